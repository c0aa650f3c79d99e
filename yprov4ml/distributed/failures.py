"""Who failed first: the earliest FAILED rank of a distributed run.

When one rank fails, the launcher ends the others (Hydra and Slurm kill them; torchrun restarts them),
so most rank records of a failed job say KILLED. The rank that failed first — its status, time and
error — is what a reader needs: the collection and the merged record name it, and the documents
``yprov4ml recover`` writes for the ranks killed after it say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..storage.journal import last_event
from ..storage.layout import journal_file

ERROR_SHOWN = 500  # characters of the failing rank's error repeated in the summaries


@dataclass(frozen=True)
class Failure:
    """One rank's failure."""

    rank: int
    time: float  # Unix time of its end
    error: str


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def first_failure(runs: Mapping[int, Mapping[str, Any]]) -> Failure | None:
    """The earliest failure among ranks' run facts (rank → status, error, ``prov:endTime`` or ``end_time``)."""
    failures = []
    for rank, run in runs.items():
        if run.get("status") != "FAILED":
            continue
        when = _seconds(run.get("prov:endTime", run.get("end_time")))
        failures.append(Failure(rank, when if when is not None else float("inf"),
                                str(run.get("error") or "no error recorded")[:ERROR_SHOWN]))
    return min(failures, key=lambda f: (f.time, f.rank), default=None)


def first_failure_in_journals(run_dir: Path, ranks: Iterable[int]) -> Failure | None:
    """The earliest failure among the ranks whose journals end with end_run (only each journal's tail is read)."""
    ended = {}
    for rank in ranks:
        event = last_event(journal_file(run_dir, rank), "end")
        if event is not None:
            ended[rank] = event
    return first_failure(ended)


def killed_after(failure: Failure) -> str:
    """The error of a rank that ended without end_run after ``failure``."""
    return (f"the process ended without end_run after rank {failure.rank} failed ({failure.error}): "
            "the launcher ends the other ranks of a failed job; recovered from the journal")


def failure_attributes(failure: Failure | None) -> dict[str, Any]:
    """``first_failed_rank`` and ``first_failure`` for a summary activity (nothing when no rank failed)."""
    return {} if failure is None else {"yprov:first_failed_rank": failure.rank, "yprov:first_failure": failure.error}
