"""The run of a rank that does not record (``collect_all_processes=False`` on ranks other than 0)."""

from __future__ import annotations

import os
from typing import Any

from .. import state

_DIRECTIVES = frozenset({
    "log_metric", "log_metrics", "log_param", "log_params", "log_artifact", "save_model_version",
    "log_model", "log_dataset", "log_current_execution_time", "log_system_metrics", "log_carbon_metrics",
    "log_execution_start_time", "log_execution_end_time", "log_flops_per_batch", "log_flops_per_epoch",
    "note_metric_source", "log_context", "register_final_metric", "log_sample_indices", "log_proof_of_learning_step",
})


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class NoOpRun:
    """Accepts every directive and records nothing, so one script runs unchanged on every rank."""

    is_active = True
    prov_path = None
    unify_experiments = False

    def __init__(self, run_id: str, rank: int, run_dir: Any):
        self.run_id, self.rank, self.run_dir = run_id, rank, run_dir
        self.pid = os.getpid()

    def __getattr__(self, name: str) -> Any:
        if name in _DIRECTIVES:
            return _ignore
        raise AttributeError(name)

    def end(self, create_graph: bool = False, create_svg: bool = False, **_: Any) -> None:
        self.is_active = False
        state.release(self)

    def wait_ended(self, timeout_s: float) -> bool:
        return True

    def detach_after_fork(self) -> None:
        """Nothing to detach: this rank records nothing."""

    def __enter__(self) -> "NoOpRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.is_active:
            self.end()

    def __repr__(self) -> str:
        return f"<yprov4ml.NoOpRun {self.run_id} rank {self.rank}: not recording>"
