"""``snakemake --logger yprov4wfs``: the workflow-level provenance of a Snakemake run, with its ML runs nested.

Installed as the top-level package ``snakemake_logger_plugin_yprov4wfs``, the
name Snakemake looks for. Settings (``--logger-yprov4wfs-<name>``, or
``SNAKEMAKE_LOGGER_YPROV4WFS_<NAME>``): ``directory`` (default ``provenance``),
``workflow-id``, ``name``, ``metadata`` (a yprov4ml.toml for the crate),
``no-crate``, ``no-svg``. The work is done in ``yprov4wfs_bridge.managers.snakemake``.
"""


import os
import sys
from dataclasses import dataclass, field
from logging import LogRecord
from typing import Optional  # not `X | None`: Snakemake reads these annotations at run time

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from yprov4wfs_bridge.managers.snakemake import SnakemakeOptions, SnakemakeRecorder, is_snakemake_subprocess


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    directory: Optional[str] = field(default="provenance", metadata={
        "help": "where the workflow record, bundle, graph and crate are written (default: provenance)",
        "env_var": True, "required": False})
    workflow_id: Optional[str] = field(default=None, metadata={
        "help": "the workflow's id (default: the working directory's name)", "env_var": True, "required": False})
    name: Optional[str] = field(default=None, metadata={
        "help": "the workflow's name in the record and the crate", "env_var": True, "required": False})
    metadata: Optional[str] = field(default=None, metadata={
        "help": "publication metadata for the crate (yprov4ml.toml: authors, license...); default: the nearest "
                "yprov4ml.toml or [tool.yprov4ml]", "env_var": True, "required": False})
    no_crate: bool = field(default=False, metadata={"help": "write no RO-Crate", "env_var": True,
                                                    "required": False})
    no_svg: bool = field(default=False, metadata={"help": "write the graph as DOT only", "env_var": True,
                                                  "required": False})


class LogHandler(LogHandlerBase):
    """Records the workflow from Snakemake's log events; writes bundle, graph and crate at the end."""

    def __post_init__(self) -> None:
        self._recorder: Optional[SnakemakeRecorder] = None
        if getattr(self.common_settings, "dryrun", False) or is_snakemake_subprocess():
            return  # a dry run records nothing; a job's own Snakemake is recorded by the main one
        settings = self.settings or LogHandlerSettings()
        from snakemake import __version__

        options = SnakemakeOptions(directory=settings.directory or "provenance", workflow_id=settings.workflow_id,
                                   name=settings.name, metadata=settings.metadata, crate=not settings.no_crate,
                                   svg=not settings.no_svg)
        self._recorder = SnakemakeRecorder(options, __version__)
        # Set here, before any job starts: jobs (local children, Slurm jobs) inherit it.
        os.environ.update(self._recorder.environment())

    def emit(self, record: LogRecord) -> None:
        if self._recorder is None:
            return
        try:
            self._recorder.handle(record)
        except Exception as exc:  # the record must never stop the workflow
            print(f"yprov4wfs: could not record {getattr(record, 'event', 'a log record')}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)

    def close(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                result = recorder.close()
                print(f"yprov4wfs: workflow record in {result.workflow_dir} (bundle, graph"
                      f"{', crate' if result.crate else ''})" + (f"; {len(result.gaps)} gap(s): " +
                                                                 "; ".join(result.gaps[:5]) if result.gaps else ""),
                      file=sys.stderr)
            except Exception as exc:
                print(f"yprov4wfs: the workflow record could not be finished: {type(exc).__name__}: {exc}; "
                      f"its events are kept: `yprov4wfs-bridge build {recorder.recorder.directory}` rebuilds it",
                      file=sys.stderr)
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # every record, whatever Snakemake's quiet/verbose settings

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
