"""The names of the files in a run directory, in one place for writers and readers."""

from __future__ import annotations

import os
import re
from pathlib import Path

COLLECTION_FILE = "collection.json"
# rank 0's package list and git state, for the other ranks (capture.shared); hidden, so that a shell glob of the
# run's documents (`yprov4ml merge RUN/*.json`) does not take it
SHARED_CAPTURE_FILE = ".capture.rank0.json"
_RANK_FILE = re.compile(r"^prov\.rank(\d+)\.json\Z")
_JOURNAL_FILE = re.compile(r"^journal\.rank(\d+)\.jsonl\Z")
RANKS_DIR = "ranks"  # the directories of the ranks beyond the first thousand
_SHARD = re.compile(r"^\d+-\d+\Z")
RANKS_PER_DIRECTORY = 1000
RANKS_PER_DIRECTORY_VARIABLE = "YPROV4ML_RANKS_PER_DIRECTORY"


def ranks_per_directory() -> int:
    """How many ranks' files one directory holds (``$YPROV4ML_RANKS_PER_DIRECTORY``, default 1,000)."""
    value = os.environ.get(RANKS_PER_DIRECTORY_VARIABLE, "")
    try:
        count = int(value) if value else RANKS_PER_DIRECTORY
    except ValueError:
        raise ValueError(f"${RANKS_PER_DIRECTORY_VARIABLE}={value!r}: give a whole number of ranks per directory "
                         f"(default {RANKS_PER_DIRECTORY})") from None
    if count < 1:
        raise ValueError(f"${RANKS_PER_DIRECTORY_VARIABLE}={value!r}: give at least 1")
    return count


def rank_dir(run_dir: Path, rank: int) -> Path:
    """Where rank ``rank``'s three files lie: the run directory for the first ``ranks_per_directory()`` ranks,
    ``ranks/<first>-<last>/`` for the others, so that no directory holds more than a few thousand entries
    (a directory of 196,608 entries is slow to look up on a parallel file system, and to list anywhere)."""
    size = ranks_per_directory()
    if rank < size:
        return run_dir
    first = rank // size * size
    return run_dir / RANKS_DIR / f"{first}-{first + size - 1}"


def prov_file(run_dir: Path, rank: int) -> Path:
    """``prov.rankN.json``: the PROV-JSON document of one rank."""
    return rank_dir(run_dir, rank) / f"prov.rank{rank}.json"


def journal_file(run_dir: Path, rank: int) -> Path:
    """``journal.rankN.jsonl``: the crash-safe event journal of one rank."""
    return rank_dir(run_dir, rank) / f"journal.rank{rank}.jsonl"


def metric_file(run_dir: Path, rank: int) -> Path:
    """``metrics.rankN.ymetric``: every metric series of one rank (``storage.metric_file``)."""
    return rank_dir(run_dir, rank) / f"metrics.rank{rank}.ymetric"


def place_in_run(path: Path) -> str:
    """A rank's file as its run directory names it: ``prov.rank3.json``, ``ranks/1000-1999/prov.rank1500.json``."""
    return path.relative_to(run_dir_of(path)).as_posix()


def located(path: Path) -> Path:
    """A rank's file for a reader: ``path`` (``prov_file`` and its kin) when it exists, else the same name in the
    run directory or another of its ``ranks/`` directories (a run written under another
    ``$YPROV4ML_RANKS_PER_DIRECTORY``); ``path`` when it is nowhere."""
    if path.exists():
        return path
    run_dir = run_dir_of(path)
    return next((other for other in [run_dir / path.name, *run_dir.glob(f"{RANKS_DIR}/*/{path.name}")]
                 if other.exists()), path)


def run_dir_of(path: Path) -> Path:
    """The run directory of a rank's file, whether it lies in it or in its ``ranks/`` part."""
    shard = path.parent
    # a ranks/<first>-<last> directory, not a run of an experiment that happens to be called "ranks"
    return shard.parent.parent if shard.parent.name == RANKS_DIR and _SHARD.match(shard.name) else shard


def rank_of_document(path: Path) -> int | None:
    """N for a ``prov.rankN.json`` file name, else None."""
    match = _RANK_FILE.match(path.name)
    return int(match.group(1)) if match else None


def rank_documents(run_dir: Path) -> list[Path]:
    """The ``prov.rankN.json`` files of a run directory and of its ``ranks/`` directories, in rank order
    (rank 2 before rank 10)."""
    found = [(rank, p) for p in _rank_files(run_dir, "prov.rank*.json") if (rank := rank_of_document(p)) is not None]
    return [p for _, p in sorted(found)]


def rank_journals(run_dir: Path) -> dict[int, Path]:
    """Every rank's ``journal.rankN.jsonl`` of a run directory (and of its ``ranks/`` directories), by rank."""
    found = {}
    for path in _rank_files(run_dir, "journal.rank*.jsonl"):
        match = _JOURNAL_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _rank_files(run_dir: Path, pattern: str) -> list[Path]:
    return [*run_dir.glob(pattern), *run_dir.glob(f"{RANKS_DIR}/*/{pattern}")]
