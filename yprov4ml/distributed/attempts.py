"""Attempts: a restarted job is a new attempt of the same run, never a second writer of the first one.

torchrun (``--max-restarts``) says how often it restarted the workers in ``TORCHELASTIC_RESTART_COUNT``,
Slurm (``--requeue``, ``scontrol requeue``) in ``SLURM_RESTART_COUNT``; a user who resubmits a job under the
same run id says it in ``YPROV4ML_RESTART_COUNT``. Attempt 1 keeps the run id; attempt k > 1 records into
``<run id>-attempt<k>``, its run activity ``wasInformedBy`` attempt k - 1's (the restart happened because of
what that attempt did), so each attempt's files stay as they were and a reader follows the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

# the first one a launcher sets wins: torchrun inside a requeued Slurm job counts its own restarts
RESTART_COUNTERS = ("TORCHELASTIC_RESTART_COUNT", "SLURM_RESTART_COUNT", "YPROV4ML_RESTART_COUNT")
MAX_RESTARTS = 1_000_000  # a counter beyond this is not a restart count


@dataclass(frozen=True)
class RunIdentity:
    """The id a rank records under, and which attempt of its run that is."""

    run_id: str
    attempt: int = 1
    previous_attempt: str | None = None  # the run id of the attempt this one restarts


def restart_count(environ: Mapping[str, str]) -> int:
    """How many times the launcher restarted this job (0: the first attempt)."""
    for name in RESTART_COUNTERS:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) <= MAX_RESTARTS:
            return int(value)
    return 0


def attempt_run_id(base: str, attempt: int) -> str:
    """The run id of attempt ``attempt`` (1-based) of the run ``base``."""
    return base if attempt <= 1 else f"{base}-attempt{attempt}"


def identity(base: str, restarts: int) -> RunIdentity:
    """Attempt ``restarts + 1`` of the run ``base``."""
    attempt = restarts + 1
    return RunIdentity(attempt_run_id(base, attempt), attempt,
                       attempt_run_id(base, attempt - 1) if attempt > 1 else None)
