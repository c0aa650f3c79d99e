"""Comparing runs: the parameters that differ and the final metrics side by side."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..collectors.groups import GROUPS, USER, grouped, says_nothing
from ..errors import NotARunError
from ..prov.reader import RunView, load_run
from ..storage.latest import resolve_latest, runs_below


@dataclass
class Comparison:
    runs: list[RunView]
    params: dict[str, list[Any]]          # only the keys whose values differ between runs
    same_params: dict[str, Any]
    metrics: dict[str, list[float | None]]  # "key@context" → last value per run (None where a run lacks it)
    notes: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # user / system / energy → metric names, in order


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories named directly, or found inside an experiment directory (or a provenance directory)."""
    found: list[Path] = []
    for item in paths:
        path = resolve_latest(Path(item))
        if path.is_file() or (path / "prov.rank0.json").is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise NotARunError(f"{path} does not exist")
        inside = runs_below(path)
        if not inside:
            raise NotARunError(f"{path} is not a run directory and holds no runs (no prov.rank0.json below it)")
        found += inside
    return found


def selected(name: str, patterns: Sequence[str] | None) -> bool:
    """Whether ``key@context`` is among ``patterns`` (``loss``, ``loss@training``, ``gpu*``; none: every one)."""
    if not patterns:
        return True
    key = name.split("@", 1)[0]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(key, p) for p in patterns)


def compare(paths: Iterable[str | Path], sort_by: str | None = None, descending: bool = False,
            metrics: Sequence[str] | None = None) -> Comparison:
    """Load the runs and line them up.

    Args:
        paths: run directories, or experiment directories holding runs.
        sort_by: a metric (``key`` or ``key@context``) to order the runs by, smallest first.
        descending: largest first.
        metrics: only the metrics these names or glob patterns match (``loss``, ``acc*@validation``).

    The user's metrics come first, then the system and the energy figures; a
    collector's series that is zero or absent in every run (a GPU the machine
    does not have) is left out, with a note.
    """
    runs = [load_run(p) for p in find_runs(paths)]
    if not runs:
        raise NotARunError("no runs to compare")
    notes = []
    experiments = sorted({r.experiment for r in runs})
    if len(experiments) > 1:
        notes.append(f"the runs belong to {len(experiments)} experiments ({', '.join(experiments)}): "
                     "compare like with like")
    keys = sorted({k for r in runs for k in r.params})
    params, same = {}, {}
    for key in keys:
        values = [r.params.get(key, "—") for r in runs]
        if all(_equal(v, values[0]) for v in values):
            same[key] = values[0]
        else:
            params[key] = values
    # "key@training/lod2": a nested context by its path, so that sub-contexts sort under their parent
    named = [{f"{k}@{r.context_path(c)}": d for (k, c), d in r.metrics.items() if d.kind == "scalar"} for r in runs]
    names = sorted({name for found in named for name in found})
    last = {name: [found[name].values[-1] if name in found and len(found[name]) else None for found in named]
            for name in names}
    shown = [name for name in names if selected(name, metrics)]
    if metrics and not shown:
        raise NotARunError(f"no metric matches {', '.join(metrics)}; the runs have: {', '.join(names) or 'none'}")
    silent = [name for name in shown if says_nothing(
        name.split("@", 1)[0], (v for found in named if name in found for v in found[name].values))]
    if silent:
        notes.append(f"left out, zero or absent in every run (no such device here): {', '.join(silent)}")
    groups = grouped([name for name in shown if name not in silent])
    finals = {name: last[name] for group in GROUPS for name in groups[group]}
    for name, values in finals.items():
        lacking = [r.run_id for r, v in zip(runs, values) if v is None]
        if lacking and len(lacking) < len(runs):
            notes.append(f"{name} is missing from {len(lacking)} run(s): {', '.join(lacking)}")
    for run in runs:
        if not run.metrics and not run.params:
            notes.append(f"run {run.run_id} recorded no parameters and no metrics")
    if sort_by:
        key, _, context = sort_by.partition("@")  # a nested context by its path, or by its own name
        name = next((n for n in names if n.split("@", 1)[0] == key and (
            not context or n.split("@", 1)[1] == context or n.split("@", 1)[1].rsplit("/", 1)[-1] == context)),
            sort_by)
        if name not in last:
            raise NotARunError(f"no metric {sort_by!r} to sort by; the runs have: {', '.join(names) or 'none'}")
        missing_last = float("-inf") if descending else float("inf")
        order = sorted(range(len(runs)), key=lambda i: missing_last if last[name][i] is None
                       or math.isnan(last[name][i]) else last[name][i], reverse=descending)
        runs = [runs[i] for i in order]
        params = {k: [v[i] for i in order] for k, v in params.items()}
        finals = {k: [v[i] for i in order] for k, v in finals.items()}
    return Comparison(runs, params, same, finals, notes, groups)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_table(comparison: Comparison) -> str:
    """A plain-text table: one column per run, params that differ, then final metrics."""
    header = ["", *[r.run_id for r in comparison.runs]]
    rows = [["status", *[r.status for r in comparison.runs]]]
    rows += [[f"param {k}", *map(_cell, v)] for k, v in comparison.params.items()]
    for group in GROUPS:
        names = comparison.groups.get(group, [])
        if names and group != USER:
            rows.append([f"-- {group} --", *([""] * len(comparison.runs))])
        rows += [[f"{k} (last)", *map(_cell, comparison.metrics[k])] for k in names]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    if comparison.same_params:
        lines.append("same in every run: " + ", ".join(f"{k}={_cell(v)}" for k, v in comparison.same_params.items()))
    lines += [f"note: {n}" for n in comparison.notes]
    return "\n".join(lines)
