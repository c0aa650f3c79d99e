"""HTML tables for Jupyter: a search result and a run (``_repr_html_``). Every value is escaped."""

from __future__ import annotations

import html
from typing import Any, Iterable

MAX_ROWS = 200  # a notebook cell shows the first runs; the result holds them all
MAX_COLUMNS = 12  # params and metrics shown per run


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.6g}"
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def summaries_html(summaries: list) -> str:
    """One row per run: id, experiment, status, start, duration, ranks, then params and last metrics."""
    params = sorted({k for s in summaries for k in s.params})[:MAX_COLUMNS]
    metrics = sorted({k for s in summaries for k in s.metrics})[:MAX_COLUMNS]
    header = ["run_id", "experiment", "status", "start", "duration (s)", "ranks",
              *(f"params.{k}" for k in params), *(f"metrics.{k}" for k in metrics)]
    rows = [[s.run_id, s.experiment, s.status, s.start_time, s.duration_s, s.world_size,
             *(s.params.get(k) for k in params), *(s.metrics.get(k) for k in metrics)]
            for s in summaries[:MAX_ROWS]]
    more = f" (the first {MAX_ROWS} shown)" if len(summaries) > MAX_ROWS else ""
    return _table(header, rows, f"{len(summaries)} run(s){more}")


def run_html(view: Any) -> str:
    """A run: its facts, params, and each series' count and last value."""
    facts = [("run_id", view.run_id), ("experiment", view.experiment), ("status", view.status),
             ("rank", f"{view.rank} of {view.world_size}"), ("start", view.start_time), ("end", view.end_time),
             ("user", view.user), ("error", view.error), ("run_dir", view.run_dir)]
    parts = [_table(["", ""], [f for f in facts if f[1] not in (None, "")], f"run {view.run_id}")]
    if view.params:
        parts.append(_table(["param", "value"], sorted(view.params.items()), "params"))
    if view.metrics:
        parts.append(_table(["metric", "context", "points", "last"],
                            [(k, c, len(d), d.values[-1] if len(d) and d.kind == "scalar" else None)
                             for (k, c), d in sorted(view.metrics.items())], "metrics"))
    models = [(m.get("prov:label") or m.get("name"), m.get("sha256")) for m in view.models]
    if models:
        parts.append(_table(["model version", "sha256"], models, "model versions"))
    return "".join(parts)
