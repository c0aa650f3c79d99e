"""``yprov4ml runs ROOT``: one line per run — when, how it ended, what differed, how it did."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..collectors.groups import USER, metric_group
from ..errors import NotARunError
from ..prov.reader import RunView, load_run
from .compare import find_runs

MAX_PARAMS = 3   # the params that differ between the runs, on each line
MAX_METRICS = 3  # the user's own metrics (last value), on each line


@dataclass
class RunLine:
    """What one line says about one run."""
    run_dir: Path
    run_id: str
    experiment: str
    status: str
    start: str | None
    seconds: float | None
    ranks: int
    params: dict[str, Any]
    metrics: dict[str, float | None]

    def as_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "run_id": self.run_id, "experiment": self.experiment,
                "status": self.status, "start": self.start, "seconds": self.seconds, "ranks": self.ranks,
                "params": self.params, "metrics": self.metrics}


def _seconds(view: RunView) -> float | None:
    try:
        ended, started = datetime.fromisoformat(str(view.end_time)), datetime.fromisoformat(str(view.start_time))
        return (ended - started).total_seconds()
    except ValueError:  # a run that never ended has no end time
        return None


def _user_metrics(view: RunView) -> dict[str, float | None]:
    return {f"{key}@{view.context_path(context)}": (data.values[-1] if len(data) else None)
            for (key, context), data in sorted(view.metrics.items())
            if data.kind == "scalar" and metric_group(key) == USER}


def list_runs(roots: Iterable[str | Path], sort: str = "start", descending: bool = False) -> list[RunLine]:
    """Every run below ``roots``, oldest first (``sort``: ``start``, ``status``, ``run_id`` or a metric
    ``key[@context]``; runs without that metric last)."""
    views = [load_run(path) for path in find_runs(roots)]
    keys = sorted({k for v in views for k in v.params})
    differ = [k for k in keys if len({repr(v.params.get(k)) for v in views}) > 1][:MAX_PARAMS]
    lines = [RunLine(v.run_dir, v.run_id, v.experiment, v.status, v.start_time, _seconds(v), v.world_size,
                     {k: v.params.get(k) for k in differ}, _user_metrics(v)) for v in views]
    if sort in ("start", "status", "run_id"):
        field = "start" if sort == "start" else sort
        return sorted(lines, key=lambda line: str(getattr(line, field) or ""), reverse=descending)
    key, _, context = sort.partition("@")

    def value(line: RunLine) -> float | None:
        found = []
        for name, figure in line.metrics.items():
            metric_key, _, path = name.partition("@")
            if metric_key == key and (not context or context in (path, path.rsplit("/", 1)[-1])):
                found.append(figure)
        return found[0] if found and found[0] is not None and not math.isnan(found[0]) else None

    if all(value(line) is None for line in lines):
        known = sorted({name for line in lines for name in line.metrics})
        raise NotARunError(f"no run has the metric {sort!r} to sort by; sort by start, status, run_id or one of: "
                           f"{', '.join(known) or 'none'}")
    missing = float("-inf") if descending else float("inf")
    return sorted(lines, key=lambda line: missing if value(line) is None else value(line), reverse=descending)


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_lines(lines: list[RunLine]) -> str:
    """The listing: run id, status, start, duration, ranks, then what differs and the user's metrics."""
    if not lines:
        return "no runs"
    width = max(len(line.run_id) for line in lines)
    out = []
    for line in lines:
        start = (line.start or "?")[:19].replace("T", " ")
        took = "running?" if line.seconds is None else f"{line.seconds:.1f}s"
        ranks = f"{line.ranks} rank" + ("" if line.ranks == 1 else "s")
        facts = [f"{k}={_figure(v)}" for k, v in line.params.items()]
        facts += [f"{k}={_figure(v)}" for k, v in list(line.metrics.items())[:MAX_METRICS]]
        text = f"{line.run_id:{width}}  {line.status:11} {start}  {took:>8}  {ranks:8}  {'  '.join(facts)}"
        out.append(text.rstrip())
    return "\n".join(out)
