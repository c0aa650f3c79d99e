"""The options of a run, checked once, before anything is created (no thread, no journal left behind)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .capture.secrets import keep_in_clear_names
from .storage.staging import stage_root

ENERGY_VARIABLE = "YPROV4ML_ENERGY"


@dataclass(frozen=True)
class RunOptions:
    """What ``start_run`` was asked for, beyond the run's identity."""

    save_after_n_logs: int = 100
    flush_interval_s: float = 5.0
    system_metrics_interval: float | None = None
    energy_country: str | None = None
    track_energy: bool = False  # start codecarbon in the background at start_run
    energy_disabled: bool = False  # upstream's disable_codecarbon: no tracker is ever started
    collect_all_processes: bool = False
    collection_timeout_s: float | None = None
    keep_in_clear: frozenset[str] = frozenset()
    mlflow_tracking_uri: str | None = None
    metrics_export: tuple[str, str, str | None] | None = None  # (format, csv separator, compressor)
    stage_dir: Path | None = None  # node-local directory the rank writes to until its end

    @classmethod
    def checked(cls, *, save_after_n_logs: Any = 100, flush_interval_s: Any = 5.0,
                system_metrics_interval: Any = None, keep_in_clear: Iterable[str] = (), track_energy: Any = None,
                energy_disabled: bool = False, stage_dir: str | os.PathLike | None = None,
                **others: Any) -> "RunOptions":
        """The options, or ValueError naming the one that is wrong and what it must be."""
        check_options(save_after_n_logs, flush_interval_s, system_metrics_interval)
        if track_energy is None:
            track_energy = os.environ.get(ENERGY_VARIABLE, "") not in ("", "0")
        if track_energy and energy_disabled:
            raise ValueError("track_energy=True and disable_codecarbon=True contradict each other: give one")
        return cls(save_after_n_logs=save_after_n_logs, flush_interval_s=flush_interval_s,
                   system_metrics_interval=system_metrics_interval, keep_in_clear=keep_in_clear_names(keep_in_clear),
                   track_energy=bool(track_energy), energy_disabled=bool(energy_disabled),
                   stage_dir=stage_root(stage_dir), **others)


def check_options(save_after_n_logs: Any, flush_interval_s: Any, system_metrics_interval: Any) -> None:
    """Refuse bad start_run options before anything is created."""
    if not isinstance(save_after_n_logs, int) or isinstance(save_after_n_logs, bool) or save_after_n_logs < 1:
        raise ValueError(f"save_after_n_logs must be a positive integer, got {save_after_n_logs!r}")
    for name, value in (("flush_interval_s", flush_interval_s), ("system_metrics_interval", system_metrics_interval)):
        if value is None and name == "system_metrics_interval":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
