"""``yprov4ml show``: a run's summary — or every run of an experiment, or every rank of a merged document."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from ..errors import DocumentError, NotARunError
from ..prov.decode import checked_schema, prov_type, rank_document
from ..prov.reader import DamagedRunWarning, RunView, load_run
from ..storage.files import read_json
from ..storage.layout import rank_documents
from .compare import find_runs


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def summary(view: RunView) -> dict[str, Any]:
    """What ``show`` says of one rank of one run, as plain data."""
    metrics = {}
    for (key, context), data in sorted(view.metrics.items()):
        elements = data.values if data.kind == "scalar" else [x for v in data.values for x in v]
        finite = _finite(elements)  # NaN is no minimum or maximum, as in the series summary
        last = data.values[-1] if data.values else None
        metrics[f"{key}@{view.context_path(context)}"] = {
            "count": len(data), "last": last if data.kind == "scalar" or last is None else f"[{len(last)} values]",
            "min": min(finite, default=None), "max": max(finite, default=None)}
    samples = {f"{key}@{view.context_path(context)}": {"steps": len(data), "samples": sum(map(len, data.values)),
                                                        "distinct": len({i for v in data.values for i in v})}
               for (key, context), data in sorted(view.sample_indices.items())}
    energy = {k: v for k, v in view.run.items() if ("energy" in k or "emissions" in k)
              and k not in ("energy_country", "energy_country_source")}
    return {"run_id": view.run_id, "experiment": view.experiment, "status": view.status, "error": view.error,
            "rank": view.rank, "world_size": view.world_size, "start": view.start_time, "end": view.end_time,
            "params": view.params, "metrics": metrics, "sample_indices": samples, "energy": energy,
            "datasets": {str(d.get("label", "")): {k: v for k, v in d.items() if not k.startswith("prov:")}
                         for d in view.datasets},
            "artifacts": [a.get("prov:location") for a in view.artifacts],
            "models": [m.get("prov:location") for m in view.models], "problems": view.problems}


def _figure(value: Any) -> str:
    if isinstance(value, str):  # a vector's last point, described
        return f"{value:>11.11s}"
    return f"{value:11.5g}" if isinstance(value, (int, float)) else f"{'-':>11s}"


def render(s: dict[str, Any]) -> str:
    """The text of one summary."""
    lines = [f"run {s['run_id']}  ({s['experiment']}, rank {s['rank']}/{s['world_size']})  {s['status']}"]
    if s["error"]:
        lines.append(f"  error: {s['error']}")
    if s["status"] == "KILLED" and "recovered" not in str(s["error"]):
        lines.append("  (killed: what was flushed is here; `yprov4ml recover` rebuilds ranks that left no document)")
    lines.append(f"  {s['start']} → {s['end']}")
    if s["params"]:
        lines.append("params:")
        lines += [f"  {key} = {value!r}" for key, value in sorted(s["params"].items())]
    if s["metrics"]:
        width = min(max(36, *(len(name) for name in s["metrics"])), 80)  # nested contexts make long names
        lines.append("metrics:" + " " * (width - 6) + "count        last         min         max")
        lines += [f"  {name:{width}.{width}s} {m['count']:5d} {_figure(m['last'])} {_figure(m['min'])} "
                  f"{_figure(m['max'])}" for name, m in s["metrics"].items()]
    if s.get("sample_indices"):
        lines.append("sample indices (which samples each step consumed):")
        lines += [f"  {name}: {m['steps']} step(s), {m['samples']} sample(s), {m['distinct']} distinct"
                  for name, m in s["sample_indices"].items()]
    if s["datasets"]:
        lines.append("datasets:")
        for label, attrs in s["datasets"].items():
            shown = ", ".join(f"{k}={v}" for k, v in attrs.items() if k in ("samples", "batch_size", "batches",
                                                                           "sample_shape", "context"))
            lines.append(f"  {label}" + (f": {shown}" if shown else ""))
    if s["energy"]:
        lines.append("energy:")
        lines += [f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}"
                  for key, value in s["energy"].items()]
    for label in ("artifacts", "models"):
        if s[label]:
            lines.append(f"{label}: " + ", ".join(map(str, s[label])))
    lines += [f"WARNING: {problem}" for problem in s["problems"]]
    return "\n".join(lines)


def _quiet_load(path: Path, rank: int) -> RunView:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRunWarning)  # said in the summary itself
        return load_run(path, rank=rank)


def _merged_ranks(path: Path) -> list[dict[str, Any]] | None:
    """Summaries of the rank bundles of a merged document (prov-merge's output), or None for another file."""
    try:
        data = checked_schema(path, read_json(path))
    except DocumentError:
        return None
    bundles = data.get("bundle") or {}
    if not bundles or not any(prov_type(e) == "yprov:DistributedRun" for e in (data.get("activity") or {}).values()):
        return None
    out = []
    for identifier, bundle in bundles.items():
        try:
            doc = rank_document(path, bundle)
        except (DocumentError, KeyError, TypeError, ValueError):
            continue
        out.append({"bundle": identifier, "run_id": doc.run_id, "rank": doc.rank, "status": doc.status,
                    "metrics": {f"{k}@{c}": m for (k, c), m in sorted(doc.metrics.items())}})
    return sorted(out, key=lambda r: (r["run_id"], r["rank"]))


def show(path: str | Path, rank: int = 0, as_json: bool = False) -> str:
    """The text (or JSON) ``yprov4ml show PATH`` prints."""
    path = Path(path)
    if path.is_file() and not path.name.startswith("prov.rank"):
        merged = _merged_ranks(path)
        if merged is not None:
            if as_json:
                return json.dumps({"merged": str(path), "ranks": merged}, indent=2, default=str)
            lines = [f"merged document {path}: {len(merged)} rank document(s)"]
            for r in merged:
                last = ", ".join(f"{k} {_figure(m['last']).strip()}" for k, m in r["metrics"].items())
                lines.append(f"  run {r['run_id']} rank {r['rank']}  {r['status']}" + (f"  {last}" if last else ""))
            return "\n".join(lines)
    if path.is_dir() and not rank_documents(path):
        if any(path.glob("journal.rank*.jsonl")):
            raise NotARunError(f"{path} has no document yet: the run was killed or is still running. "
                               f"`yprov4ml recover {path}` writes one from its journal (status KILLED)")
        try:
            runs = find_runs([path])
        except NotARunError:  # no finished run below: perhaps unfinished ones
            runs = []
        unfinished = sorted({j.parent for j in path.glob("*/journal.rank*.jsonl")} - set(runs))
        if runs or unfinished:  # an experiment (or a provenance) directory: every run in it
            summaries = [summary(_quiet_load(run, rank)) for run in runs]
            if as_json:
                return json.dumps(summaries, indent=2, default=str)
            return "\n\n".join([render(s) for s in summaries] + [
                f"run {run.name}: no document yet (killed or still running): `yprov4ml recover {run}`"
                for run in unfinished])
    s = summary(_quiet_load(path, rank))
    return json.dumps(s, indent=2, default=str) if as_json else render(s)
