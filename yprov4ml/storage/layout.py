"""The names of the files in a run directory, in one place for writers and readers."""

from __future__ import annotations

import re
from pathlib import Path

COLLECTION_FILE = "collection.json"
# rank 0's package list and git state, for the other ranks (capture.shared); hidden, so that a shell glob of the
# run's documents (`yprov4ml merge RUN/*.json`) does not take it
SHARED_CAPTURE_FILE = ".capture.rank0.json"
_RANK_FILE = re.compile(r"^prov\.rank(\d+)\.json\Z")


def prov_file(run_dir: Path, rank: int) -> Path:
    """``prov.rankN.json``: the PROV-JSON document of one rank."""
    return run_dir / f"prov.rank{rank}.json"


def journal_file(run_dir: Path, rank: int) -> Path:
    """``journal.rankN.jsonl``: the crash-safe event journal of one rank."""
    return run_dir / f"journal.rank{rank}.jsonl"


def metric_file(run_dir: Path, rank: int) -> Path:
    """``metrics.rankN.ymetric``: every metric series of one rank (``storage.metric_file``)."""
    return run_dir / f"metrics.rank{rank}.ymetric"


def rank_of_document(path: Path) -> int | None:
    """N for a ``prov.rankN.json`` file name, else None."""
    match = _RANK_FILE.match(path.name)
    return int(match.group(1)) if match else None


def rank_documents(run_dir: Path) -> list[Path]:
    """The ``prov.rankN.json`` files of a run directory, in rank order (rank 2 before rank 10)."""
    found = [(rank, p) for p in run_dir.glob("prov.rank*.json") if (rank := rank_of_document(p)) is not None]
    return [p for _, p in sorted(found)]
