"""Who failed first: the earliest FAILED rank of a distributed run.

When one rank fails, the launcher ends the others (Hydra and Slurm kill them; torchrun restarts them),
so most rank records of a failed job say KILLED. The rank that failed first — its status, time and
error — is what a reader needs: the collection and the merged record name it, and the documents
``yprov4ml recover`` writes for the ranks killed after it say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..storage.journal import last_event
from ..storage.layout import journal_file, located
from .sentinel import ENDS_DIR

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
        if run.get("status") != "FAILED" and run.get("ended_first") is not True:  # (a recovered document)
            continue
        when = _seconds(run.get("prov:endTime", run.get("end_time")))
        failures.append(Failure(rank, when if when is not None else float("inf"),
                                str(run.get("error") or "no error recorded")[:ERROR_SHOWN]))
    return min(failures, key=lambda f: (f.time, f.rank), default=None)


DIED_HOW = "killed by a signal (kill -9, the OOM killer, the launcher) or crashed"
DIED = f"ended without end_run: {DIED_HOW}"
ENDS_FILE_MAX = 16 << 20  # bytes of one node's ends file read at most (one short line per dead rank)


def sentinel_ends(run_dir: Path) -> dict[int, float]:
    """Rank → the time its node's sentinel saw it die (``sentinel.py``): ranks that ended without end_run."""
    ends: dict[int, float] = {}
    folder = run_dir / ENDS_DIR
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > ENDS_FILE_MAX:
            continue  # not the sentinel's own file
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                seen = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(seen, dict) and isinstance(seen.get("rank"), int) and isinstance(seen.get("ended_at"), float):
                ends[seen["rank"]] = min(seen["ended_at"], ends.get(seen["rank"], seen["ended_at"]))
    return ends


def first_failure_of_run(run_dir: Path, ranks: Iterable[int]) -> Failure | None:
    """The earliest failure of a run directory: ranks whose journals end with end_run FAILED (only each
    journal's tail is read), and ranks their node's sentinel saw die."""
    ended: dict[int, dict[str, Any]] = {}
    for rank in ranks:
        event = last_event(located(journal_file(run_dir, rank)), "end")
        if event is not None:
            ended[rank] = event
    for rank, when in sentinel_ends(run_dir).items():
        if rank not in ended:  # a rank that wrote its end first did not die unrecorded
            ended[rank] = {"status": "FAILED", "end_time": when, "error": DIED}
    return first_failure(ended)


def died_first(failure: Failure) -> str:
    """The error of the rank that was the first of its job to die without end_run."""
    return f"the first rank of the job that {DIED}; recovered from the journal"


def killed_after(failure: Failure) -> str:
    """The error of a rank that ended without end_run after ``failure``."""
    cause = f"died ({DIED_HOW})" if failure.error in (DIED, died_first(failure)) else f"failed ({failure.error})"
    return (f"the process ended without end_run after rank {failure.rank} {cause}: "
            "the launcher ends the other ranks of a failed job; recovered from the journal")


def failure_attributes(failure: Failure | None) -> dict[str, Any]:
    """``first_failed_rank`` and ``first_failure`` for a summary activity (nothing when no rank failed)."""
    return {} if failure is None else {"yprov:first_failed_rank": failure.rank, "yprov:first_failure": failure.error}
