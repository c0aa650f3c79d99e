"""An itwinai logger (``ProvMLItwinAILogger``) that records into yprov4ml, as upstream's does.

itwinai's trainers talk to loggers through ``create_logger_context(rank)``,
``save_hyperparameters(params)``, ``log(item, identifier, kind, step, batch_idx, context)`` and
``destroy_logger_context()``; ``log_freq`` and ``log_on_workers`` decide which calls are kept. Where itwinai
is installed the logger is one of its ``Logger`` subclasses; elsewhere a base class of the same interface
stands in (itwinai 0.4 pins upstream's own ``yprov4ml`` package, so the two cannot share an environment).

Kinds (``supported_kinds``): metric, flops_pb, flops_pe, system, carbon, execution_time, model (a model
version), best_model (the final model), torch (a DataLoader → dataset, else a parameter), param, dataset,
artifact, prov_documents (end the run and return its documents). itwinai sends every kind to every logger of
a collection; like each of its loggers, this one leaves the kinds it does not take (figure, image, text, ...)
to the others. Upstream's ``LoggingItemKind`` members name the same kinds.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from .. import api, state
from ..context import Context


class LoggingItemKind(Enum):
    """Upstream's names of the kinds ``ProvMLItwinAILogger.log`` takes."""

    METRIC = "metric"
    FLOPS_PER_BATCH = "flops_pb"
    FLOPS_PER_EPOCH = "flops_pe"
    SYSTEM_METRIC = "system"
    CARBON_METRIC = "carbon"
    EXECUTION_TIME = "execution_time"
    MODEL_VERSION = "model_version"
    FINAL_MODEL_VERSION = "model_version_final"
    PARAMETER = "param"


class _LoggerInterface:
    """itwinai's ``Logger`` interface (itwinai.loggers.Logger), for where itwinai is not installed."""

    worker_rank: int = 0
    is_initialized: bool = False

    def __init__(self, savedir: Path | str = "mllogs", log_freq: int | str = "epoch",
                 log_on_workers: int | list[int] = 0) -> None:
        self.savedir = Path(savedir)
        self.log_freq = log_freq
        self.log_on_workers = log_on_workers

    @property
    def log_freq(self) -> int | str:
        return self._log_freq

    @log_freq.setter
    def log_freq(self, value: int | str) -> None:
        if value in ("epoch", "batch") or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            self._log_freq = value
        else:
            raise ValueError(f"Wrong value for 'log_freq'. Supported values are: ['epoch', 'batch'] or int > 0. "
                             f"Received: {value}")

    @contextlib.contextmanager
    def start_logging(self, rank: int = 0) -> Iterator[None]:
        try:
            self.create_logger_context(rank=rank)
            yield
        finally:
            self.destroy_logger_context()

    def should_log(self, batch_idx: int | None = None) -> bool:
        """itwinai's rule: this worker logs (``log_on_workers``: -1 all, a rank, or a list of ranks), and
        ``batch_idx`` (when given) falls on ``log_freq`` ('epoch': never per batch, 'batch': always, N: every N)."""
        workers = self.log_on_workers
        if not ((isinstance(workers, int) and workers in (-1, self.worker_rank)) or
                (isinstance(workers, list) and self.worker_rank in workers)):
            return False
        if batch_idx is None:
            return True
        if isinstance(self.log_freq, int):
            return batch_idx % self.log_freq == 0
        return self.log_freq == "batch"


def _is_data(value: Any) -> bool:
    """A torch DataLoader or Dataset (told by its classes' module: torch is not imported here)."""
    return any(cls.__module__.startswith("torch.utils.data") for cls in type(value).__mro__)


try:
    from itwinai.loggers import Logger  # the real base class where itwinai is installed
except ImportError:
    Logger = _LoggerInterface  # type: ignore[assignment,misc]


class ProvMLItwinAILogger(Logger):  # type: ignore[valid-type,misc]
    """itwinai logger that records the run with yprov4ml (joining a run the script started already)."""

    supported_kinds = ("metric", "flops_pb", "flops_pe", "system", "carbon", "execution_time", "model",
                       "model_version", "best_model", "model_version_final", "torch", "param", "dataset",
                       "artifact", "prov_documents")

    def __init__(self, prov_user_namespace: str = "www.example.org", experiment_name: str = "experiment_name",
                 provenance_save_dir: str | Path = "mllogs", save_after_n_logs: int = 100,
                 create_graph: bool = True, create_svg: bool = True, log_freq: int | str = "epoch",
                 log_on_workers: int | list[int] = 0) -> None:
        super().__init__(savedir=provenance_save_dir, log_freq=log_freq, log_on_workers=log_on_workers)
        self.name, self.version = experiment_name, None
        self.prov_user_namespace = prov_user_namespace
        self.provenance_save_dir = provenance_save_dir
        self.save_after_n_logs = save_after_n_logs
        self.create_graph, self.create_svg = create_graph, create_svg
        self._started = False  # this logger started the run (and ends it); else it joined the script's

    def create_logger_context(self, rank: int | None = None, **kwargs: Any) -> None:
        """Start recording on the workers that log (or join the run the script started)."""
        self.worker_rank = rank or 0
        self.is_initialized = True
        if not self.should_log() or state._active is not None:
            return
        workers = self.log_on_workers
        every_rank_logs = workers == -1 or (isinstance(workers, list) and workers != [0])
        api.start_run(self.prov_user_namespace, self.name, self.provenance_save_dir,
                      collect_all_processes=every_rank_logs, save_after_n_logs=self.save_after_n_logs,
                      rank=rank)
        self._started = True

    def destroy_logger_context(self) -> None:
        """End the run this logger started (a run the script started is the script's to end)."""
        if self._started and state._active is not None:
            api.end_run(create_graph=self.create_graph, create_svg=self.create_svg)
        self._started = False
        self.is_initialized = False

    def save_hyperparameters(self, params: dict[str, Any]) -> None:
        """Parameters; a DataLoader or Dataset among them (upstream's examples pass their loaders here) is
        recorded as a dataset, with its size, batches and fingerprint, not as the text of its repr."""
        if not self.should_log():
            return
        plain = {}
        for key, value in dict(params).items():
            if _is_data(value):
                api.log_dataset(value, key)
            else:
                plain[key] = value
        api.log_params(plain)

    def log(self, item: Any, identifier: str, kind: str | LoggingItemKind = "metric", step: int | None = None,
            batch_idx: int | None = None, context: Context | str | None = "training", **kwargs: Any) -> Any:
        """Record ``item`` under ``identifier`` as ``kind`` says (see the module's list)."""
        if not self.should_log(batch_idx=batch_idx):
            return None
        kind = kind.value if isinstance(kind, LoggingItemKind) else kind
        if kind == "metric":
            return api.log_metric(identifier, item, context, step)
        if kind in ("flops_pb", "flops_pe"):
            model, data = item
            directive = api.log_flops_per_batch if kind == "flops_pb" else api.log_flops_per_epoch
            return directive(identifier, model, data, context, step)
        if kind == "system":
            return api.log_system_metrics(context, step)
        if kind == "carbon":
            return api.log_carbon_metrics(context, step)
        if kind == "execution_time":
            return api.log_current_execution_time(identifier, context, step)
        if kind in ("model", "model_version"):
            return api.save_model_version(item, identifier, context, step)
        if kind in ("best_model", "model_version_final"):
            return api.log_model(item, identifier, context)
        if (kind == "torch" and _is_data(item)) or kind == "dataset":
            return api.log_dataset(item, identifier, context)
        if kind in ("torch", "param"):
            return api.log_param(identifier, item)
        if kind == "artifact":
            return api.log_artifact(item, context, step, name=identifier)
        if kind == "prov_documents":
            return api.log_provenance_documents(create_graph=self.create_graph, create_svg=self.create_svg)
        return None  # figure, image, text, ...: another logger's kinds
