"""Plotting metric series of runs (matplotlib, no display needed): one curve per run and rank."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .compare import find_runs
from ..errors import NotARunError
from ..prov.reader import load_run, rank_documents


def _views(paths: Iterable[str | Path]):
    """Every rank of every run: (label, view)."""
    out = []
    for run_dir in find_runs(paths):
        ranks = rank_documents(run_dir) if run_dir.is_dir() else [run_dir]
        for doc in ranks:
            view = load_run(doc)
            label = view.run_id if len(ranks) == 1 else f"{view.run_id} rank {view.rank}"
            out.append((label, view))
    return out


def _series(view, metric: str):
    key, _, context = metric.partition("@")
    if context:
        return view.metrics.get((key, context))
    matches = [d for (k, c), d in sorted(view.metrics.items()) if k == key]
    return matches[0] if matches else None


def plot(paths: Iterable[str | Path], metric: str, output: str | Path, vs: str | None = None,
         x: str = "step") -> tuple[Path, list[str]]:
    """Draw ``metric`` (and ``vs`` on a second y axis) against step or time; PNG or SVG by suffix.

    Returns the output path and notes about runs that lack a metric.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = _views(paths)
    notes: list[str] = []
    figure, axis = plt.subplots(figsize=(9, 5))
    second = axis.twinx() if vs else None
    drawn = 0
    for label, view in views:
        for name, target, style in ((metric, axis, "-"), (vs, second, "--")):
            if not name:
                continue
            data = _series(view, name)
            if data is None or not len(data):
                notes.append(f"{label} has no metric {name}")
                continue
            xs = data.steps if x == "step" else [t - data.times[0] for t in data.times]
            target.plot(xs, data.values, style, label=f"{name} — {label}")
            drawn += 1
    if not drawn:
        plt.close(figure)
        raise NotARunError(f"none of the runs has the metric {metric!r}" + (f" or {vs!r}" if vs else ""))
    axis.set_xlabel("step" if x == "step" else "seconds since the series began")
    axis.set_ylabel(metric)
    handles, labels = axis.get_legend_handles_labels()
    if second is not None:
        second.set_ylabel(vs)
        more = second.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axis.legend(handles, labels, fontsize=7, loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    output = Path(output)
    figure.savefig(output)
    plt.close(figure)
    return output, notes
