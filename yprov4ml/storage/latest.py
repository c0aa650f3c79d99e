"""``prov/mnist/latest``: the newest run of a directory, so that a user need not type a run id.

A real file or directory called ``latest`` always wins; otherwise the name
stands for the run below its parent that started last, by the start time
its rank-0 journal records (the first line, written at start_run), or, for
a run without a journal (an imported one), by its document's mtime.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import NotARunError
from .layout import journal_file, prov_file

LATEST = "latest"
MAX_FIRST_LINE = 1 << 16  # the start event is a few hundred bytes; a longer line is not one


def _started(run_dir: Path) -> float:
    journal = journal_file(run_dir, 0)
    try:
        with open(journal, "rb") as fh:
            first = json.loads(fh.readline(MAX_FIRST_LINE))
        if isinstance(first, dict) and isinstance(first.get("start_time"), (int, float)):
            return float(first["start_time"])
    except (OSError, ValueError, RecursionError):
        pass  # no journal, or a damaged one: the document's time
    return prov_file(run_dir, 0).stat().st_mtime


def runs_below(directory: Path) -> list[Path]:
    """The run directories in ``directory`` (an experiment) or one level further (a provenance directory),
    sorted; a run's crate holds copies of its documents, and is not another run."""
    runs = {p.parent for p in directory.glob("*/prov.rank0.json")} | \
        {p.parent for p in directory.glob("*/*/prov.rank0.json")}
    return sorted(r for r in runs if not (r / "ro-crate-metadata.json").is_file())


def newest_run(directory: Path) -> Path:
    """The run directory below ``directory`` (an experiment or a provenance directory) that started last."""
    runs = runs_below(directory)
    if not runs:
        raise NotARunError(f"{directory / LATEST}: there is no run below {directory} (no prov.rank0.json)")
    return max(runs, key=lambda run: (_started(run), run.name))


def resolve_latest(path: Path) -> Path:
    """``path`` itself, or, for ``…/latest`` that does not exist, the newest run of its parent."""
    if path.name != LATEST or path.exists():
        return path
    return newest_run(path.parent)
