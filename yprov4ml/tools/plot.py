"""Plotting metric series of runs (matplotlib, no display needed): one curve per run and rank."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

from .compare import find_runs
from ..errors import NotARunError
from ..prov.reader import load_run, rank_documents


def _differing_params(views: list) -> list[str]:
    """The parameters whose values differ between the runs (in a stable order)."""
    keys = sorted({k for v in views for k in v.params})
    return [k for k in keys if len({repr(v.params.get(k)) for v in views}) > 1]


def labelled_views(paths: Iterable[str | Path]) -> list[tuple[str, Any]]:
    """Every rank of every run: (label, view). A label says what differs between the runs (``lr=0.1``)."""
    loaded = []
    for run_dir in find_runs(paths):
        ranks = rank_documents(run_dir) if run_dir.is_dir() else [run_dir]
        loaded += [(len(ranks), load_run(doc)) for doc in ranks]
    differ = _differing_params([v for _, v in loaded])[:3]
    out = []
    for n_ranks, view in loaded:
        name = ", ".join(f"{k}={view.params.get(k)!r}" if isinstance(view.params.get(k), str)
                         else f"{k}={view.params.get(k)}" for k in differ) or view.run_id
        out.append((name if n_ranks == 1 else f"{name} rank {view.rank}", view))
    return out


def series_xy(data, x: str = "step") -> tuple[list[float], str | None]:
    """The x values of a series, and a note when its steps repeat (a per-batch metric logged with step=epoch):
    then it is drawn against the order of logging, which keeps every point visible."""
    if x != "step":
        return [t - data.times[0] for t in data.times], None
    if len(set(data.steps)) < len(data.steps):
        return list(range(len(data.steps))), f"the steps of {data.key} repeat: drawn against the order of logging"
    return data.steps, None


def _series(view, metric: str, nested: bool = True) -> list[tuple[str, object]]:
    """(context path, series) of ``metric`` in a run, grouped by the context hierarchy: ``key`` names every
    context's series of that key, ``key@context`` that context's and (``nested``) its sub-contexts'
    (``training/lod2``)."""
    key, _, context = metric.partition("@")
    found = []
    for (k, c), data in view.metrics.items():
        path = view.context_path(c)
        if k == key and (not context or context in (c, path) or nested and (
                path.startswith(f"{context}/") or f"/{context}/" in f"/{path}/")):
            if data.kind != "scalar":
                raise NotARunError(f"metric {metric!r} of run {view.run_id} holds vectors: a curve is drawn from "
                                   f"numbers (read them with yprov4ml.load_run(...).metric({key!r}))")
            found.append((path, data))
    return sorted(found, key=lambda item: item[0])


LEGEND_POINTS = 9  # readable on a page at the figure's size


def tidy_axes(axis: Any, integer_x: bool | None) -> None:
    """Whole-number ticks for steps, and tick labels that read as the values (no ``+4.51e10`` offset);
    ``integer_x`` None leaves the x axis alone (a twin axis shares it)."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    if integer_x:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for which in (axis.yaxis,) if integer_x is None else (axis.xaxis, axis.yaxis):
        formatter = ScalarFormatter(useOffset=False)
        # byte counts up to a terabyte read as themselves; beyond, one "1e13" multiplier, never an offset
        formatter.set_powerlimits((-4, 12))
        which.set_major_formatter(formatter)


def known_metrics(views: list[tuple[str, Any]]) -> list[str]:
    """Every scalar ``key@context`` the runs have, for a message that says what could be drawn."""
    return sorted({f"{k}@{view.context_path(c)}" for _, view in views for (k, c), data in view.metrics.items()
                   if data.kind == "scalar"})


def plot(paths: Iterable[str | Path], metric: str, output: str | Path, vs: str | None = None,
         x: str = "step") -> tuple[Path, list[str]]:
    """Draw ``metric`` (and ``vs`` on a second y axis) against step or time; PNG or SVG by suffix.

    Returns the output path and notes: runs that lack a metric, series drawn against logging order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = labelled_views(paths)
    notes: list[str] = []
    figure, axis = plt.subplots(figsize=(9, 5))
    second = axis.twinx() if vs else None
    drawn, reordered = 0, False
    # One colour cycle for both axes: a --vs curve never takes the colour of a curve of the first metric.
    colours = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for label, view in views:
        for name, target, style in ((metric, axis, "-"), (vs, second, "--")):
            if not name:
                continue
            found = [(path, data) for path, data in _series(view, name) if len(data)]
            if not found:
                notes.append(f"{label} has no metric {name}")
                continue
            for path, data in found:
                xs, note = series_xy(data, x)
                if note:
                    notes.append(f"{label}: {note}")
                    reordered = True
                shown = f"{data.key}@{path}" if len(found) > 1 or "@" in name else name
                target.plot(xs, data.values, style, marker="o" if len(data) == 1 else None,
                            label=f"{shown} — {label}", color=next(colours))
                drawn += 1
    if not drawn:
        plt.close(figure)
        raise NotARunError(f"none of the runs has the metric {metric!r}" + (f" or {vs!r}" if vs else "") +
                           f"; they have: {', '.join(known_metrics(views)) or 'no metric at all'}")
    axis.set_xlabel("seconds since the series began" if x != "step" else
                    "step (or order of logging, where steps repeat)" if reordered else "step")
    axis.set_ylabel(metric)
    handles, labels = axis.get_legend_handles_labels()
    if second is not None:
        second.set_ylabel(f"{vs} (dashed)")
        tidy_axes(second, integer_x=None)
        more = second.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    tidy_axes(axis, integer_x=x == "step")
    axis.legend(handles, labels, fontsize=LEGEND_POINTS, loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    output = Path(output)
    figure.savefig(output)
    plt.close(figure)
    return output, notes
