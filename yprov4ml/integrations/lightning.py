"""A PyTorch Lightning logger that records the run with yprov4ml.

    from yprov4ml.integrations.lightning import YProv4MLLogger
    trainer = lightning.Trainer(logger=YProv4MLLogger(experiment_name="mnist"), ...)

Hyperparameters become parameters; every logged metric keeps its step and its
context (training, validation, evaluation from Lightning's stage, read from
the metric's name: ``val_*``/``*/val`` → validation, ``test_*`` → evaluation);
saved checkpoints become model versions; the run ends with the trainer's
status (after a successful ``fit`` it stays open for ``test``, and ends at
``logger.end()`` or at interpreter exit). Under DDP every rank records its own document (collect_all_processes),
with rank handling as for any yprov4ml run.
"""

from __future__ import annotations

import atexit
import warnings
from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping

from lightning.pytorch.loggers.logger import Logger

import yprov4ml
from yprov4ml.context import Context

_STATUS = {"success": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "finished": "FINISHED"}


def context_of(name: str) -> Context:
    """The context a Lightning metric name belongs to."""
    lowered = name.lower()
    parts = lowered.replace("/", "_").split("_")
    if "val" in parts or "valid" in parts or "validation" in parts:
        return Context.VALIDATION
    if "test" in parts:
        return Context.EVALUATION
    return Context.TRAINING


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, Namespace):
            out.update(_flatten(vars(value), f"{name}."))
        else:
            out[name] = value
    return out


class YProv4MLLogger(Logger):
    """Lightning ``Logger`` backed by a yprov4ml run: the run the script already started (joined, and left for
    the script to end), else one started on first use, on every rank. ``prefix`` goes before every metric
    name, joined with '-', as with Lightning's own loggers."""

    log_epoch = False  # Lightning adds "epoch" to every call of log_metrics: it is the step's, not a result

    def __init__(self, experiment_name: str = "lightning", provenance_save_dir: str = "prov",
                 prov_user_namespace: str | None = None, log_checkpoints: bool = True, prefix: str = "",
                 **start_run_options: Any):
        super().__init__()
        self._prefix = prefix
        self._joined = False  # the run is the script's: the logger never ends it
        self._experiment = experiment_name
        self._save_dir = provenance_save_dir
        self._namespace = prov_user_namespace
        self._log_checkpoints = log_checkpoints
        self._options = start_run_options
        self._run: Any = None
        self._saved: set[str] = set()
        self._end_registered = False
        self._last_step: int | None = None

    @property
    def name(self) -> str:
        return self._experiment

    @property
    def version(self) -> str:
        return self.experiment.run_id

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def experiment(self) -> Any:
        """The yprov4ml run: the script's active run, else one started here on first use."""
        if self._run is None and yprov4ml.active_run() is not None:
            self._run, self._joined = yprov4ml.active_run(), True
        if self._run is None:
            self._run = yprov4ml.start_run(self._namespace, self._experiment, self._save_dir,
                                           collect_all_processes=True, **self._options)
        return self._run

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        run = self.experiment
        for key, value in _flatten(dict(params or {})).items():
            try:
                run.log_param(key, value)
            except yprov4ml.ParamConflictError as exc:
                # The same value again (a resumed fit) is accepted by log_param; a changed one is not
                # recorded, and the user is told so rather than left to find out from the record.
                warnings.warn(f"yprov4ml Lightning logger: {exc}", RuntimeWarning, stacklevel=2)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        run = self.experiment
        if step is not None:
            self._last_step = step  # the step of the checkpoints saved after these metrics
        for key, value in metrics.items():
            if key == "epoch" and not self.log_epoch:
                continue
            run.log_metric(f"{self._prefix}-{key}" if self._prefix else key, value, context_of(key), step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_checkpoints:
            return
        for path in (getattr(checkpoint_callback, "best_model_path", ""),
                     getattr(checkpoint_callback, "last_model_path", "")):
            if path and path not in self._saved and Path(path).is_file():
                self._saved.add(path)
                self.experiment.save_model_version(path, "checkpoint", Context.TRAINING, self._last_step)

    def finalize(self, status: str) -> None:
        """Lightning calls this after every stage (fit, then test...): a failure ends the run at once; a
        success keeps it open for the next stage and ends it at ``end()`` or at interpreter exit."""
        if self._run is None or not getattr(self._run, "is_active", False):
            return
        if self._joined:  # the script ends its run (a failure reaches it as the exception Lightning raises)
            writer = getattr(self._run, "_writer", None)  # a rank that does not record has none
            if writer is not None:
                writer.drain()
            return
        if status in ("success", "finished"):
            if not self._end_registered:
                atexit.register(self.end)
                self._end_registered = True
            self._run._writer.drain()  # what the stage logged is on disk now
            return
        self.end(_STATUS.get(status, "FAILED"), f"Lightning finished with status {status!r}")

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the run (also called at interpreter exit after a successful stage); a joined run is the
        script's to end."""
        if self._run is not None and not self._joined and self._run.is_active:
            from yprov4ml import api

            api.finish(self._run, status, error)


class ProvMLLogger(YProv4MLLogger):
    """Upstream yprov4ml 3.x's Lightning logger, by its name and arguments.

    Upstream's pattern — ``start_run(...)``, then ``Trainer(logger=[ProvMLLogger()])``, then ``end_run()`` —
    joins the script's run. Without one, a run is started: ``name`` is its experiment, ``version`` its run id,
    ``flush_logs_every_n_steps`` its ``save_after_n_logs``. Like upstream's, it records "epoch" as a series.
    """

    log_epoch = True

    def __init__(self, name: str | None = "lightning_logs", version: int | str | None = None, prefix: str = "",
                 flush_logs_every_n_steps: int = 100, **options: Any):
        super().__init__(experiment_name=name or "lightning_logs", prefix=prefix,
                         save_after_n_logs=flush_logs_every_n_steps,
                         **({"run_id": str(version)} if version is not None else {}), **options)
