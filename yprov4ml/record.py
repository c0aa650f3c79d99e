"""The run record: what a run logged, as plain data. It knows nothing of PROV or files.

`provdoc` maps a record to PROV; `run` fills it; `reader` rebuilds views of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .storage.series import MetricSeries


@dataclass
class RunInfo:
    """Identity and lifecycle of one run on one rank."""

    run_id: str
    experiment: str
    user_namespace: str
    user: str
    run_dir: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launcher: str = "none"
    collect_all_processes: bool = False
    host: str = ""
    node: str = ""  # the cluster node (Slurm's node name; else the host)
    node_index: int | None = None  # its index in the job, when the launcher says it
    pid: int = 0
    command_line: str = ""
    working_dir: str = ""  # where the command ran: relative paths in it are relative to this
    start_time: float = 0.0
    end_time: float | None = None
    status: str = "RUNNING"
    error: str | None = None
    parent_task: dict[str, str] | None = None
    redacted: list[str] = field(default_factory=list)  # where secrets were hidden (never what they were)
    external_ids: dict[str, str] = field(default_factory=dict)  # ids elsewhere (an imported MLflow run's)
    attempt: int = 1  # which try of the run (a launcher's restart makes the next)
    previous_attempt: str | None = None  # the run id of the attempt this one restarts


@dataclass
class Param:
    key: str
    value: Any
    time: float
    redacted: list[str] = field(default_factory=list)
    context: str | None = None  # the context whose activity used it (else the run's)
    source: str | None = None  # where the value came from (upstream's ``source``)
    is_input: bool = False


@dataclass
class FileEntity:
    """A file the run used or produced: an artifact, or a saved model version."""

    name: str
    path: str  # relative to the run directory
    size: int
    sha256: str | None  # None until the background worker has hashed it (storage.background_files)
    time: float
    context: str | None = None
    step: int | None = None
    is_input: bool = False
    original_path: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelVersion(FileEntity):
    """One saved state of a model; versions of one name form a derivation chain."""

    model_name: str = ""
    version: int = 1
    final: bool = False


@dataclass
class DatasetInfo:
    label: str
    time: float
    context: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything one rank of one run recorded."""

    info: RunInfo
    params: dict[str, Param] = field(default_factory=dict)
    metrics: dict[tuple[str, str], MetricSeries] = field(default_factory=dict)
    metric_sources: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # upstream's ``source``
    metric_exports: dict[tuple[str, str], str] = field(default_factory=dict)  # the CSV/netCDF/... copy's path
    context_parents: dict[str, str] = field(default_factory=dict)  # a sub-context → the context it is part of
    context_sources: dict[str, str] = field(default_factory=dict)  # upstream's ``source_of_data``
    artifacts: list[FileEntity] = field(default_factory=list)
    models: list[ModelVersion] = field(default_factory=list)
    datasets: list[DatasetInfo] = field(default_factory=list)
    context_times: dict[str, list[float]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    resource_usage: dict[str, Any] = field(default_factory=dict)
    randomness: dict[str, Any] = field(default_factory=dict)  # RNG states file, generators used and seeded

    def nest_context(self, context: str, parent: str | None, source: str | None, when: float) -> None:
        """Declare ``context`` (under ``parent``); a loop or a second, different parent is refused."""
        if parent is not None:
            known = self.context_parents.get(context)
            if known is not None and known != parent:
                raise ValueError(f"context {context!r} is already part of {known!r}; a context has one parent")
            ancestor: str | None = parent
            while ancestor is not None:
                if ancestor == context:
                    raise ValueError(f"context {context!r} under {parent!r} would make a loop of contexts")
                ancestor = self.context_parents.get(ancestor)
            self.context_parents[context] = parent
            self.touch_context(parent, when)
        if source is not None:
            self.context_sources[context] = source
        self.touch_context(context, when)

    def touch_context(self, context: str, when: float) -> None:
        """Widen the time span of ``context`` to include ``when``."""
        span = self.context_times.get(context)
        if span is None:
            self.context_times[context] = [when, when]
        else:
            if when < span[0]:
                span[0] = when
            if when > span[1]:
                span[1] = when
