"""Reading a recorded run back: parameters, metric series, artifacts, models, status."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotARunError
from ..storage.files import resolve_inside
from ..storage.layout import prov_file, rank_documents
from ..storage.metric_file import MetricData, read_metric_file
from .decode import attributes, prov_type, run_activity

__all__ = ["RunView", "load_run", "rank_documents", "find_prov_file", "DamagedRunWarning"]


class DamagedRunWarning(UserWarning):
    """A run loaded with damaged, missing or miscounted metric data (see ``RunView.problems``)."""


@dataclass
class RunView:
    """A finished (or recovered) run on one rank, as read from its PROV-JSON and metric files."""

    run_dir: Path
    prov_path: Path
    run_id: str
    experiment: str
    status: str
    rank: int
    world_size: int
    start_time: str | None
    end_time: str | None
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[tuple[str, str], MetricData] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # damaged or missing metric data, said plainly

    def metric(self, key: str, context: str = "training") -> MetricData:
        """One series; KeyError lists the series that exist."""
        try:
            return self.metrics[key, context]
        except KeyError:
            known = ", ".join(f"{k}@{c}" for k, c in sorted(self.metrics)) or "none"
            raise KeyError(f"no metric {key!r} in context {context!r}; this run has: {known}") from None


def find_prov_file(path: Path, rank: int) -> Path:
    """The rank document named by a run directory or a file path; NotARunError otherwise."""
    if path.is_dir():
        candidate = prov_file(path, rank)
        if candidate.is_file():
            return candidate
        raise NotARunError(f"{path} is not a yprov4ml run directory: no prov.rank{rank}.json in it")
    if path.is_file():
        return path
    raise NotARunError(f"{path} does not exist")


def load_run(path: str | Path, rank: int = 0) -> RunView:
    """Read a run directory (or one of its ``prov.rankN.json`` files)."""
    prov_path = find_prov_file(Path(path), rank)
    try:
        doc = json.loads(prov_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotARunError(f"{prov_path} is not readable PROV-JSON: {exc}") from None
    found = run_activity(doc)
    if found is None:
        raise NotARunError(f"{prov_path} holds no yprov4ml run activity (prov:type yprov:RunExecution)")
    run_id, run_element = found
    info = attributes(run_element)
    run_dir = prov_path.parent
    view = RunView(
        run_dir=run_dir, prov_path=prov_path, run_id=info.get("run_id", run_id), experiment=info.get("experiment", ""),
        status=info.get("status", "UNKNOWN"), rank=int(info.get("rank", 0)), world_size=int(info.get("world_size", 1)),
        start_time=info.get("prov:startTime"), end_time=info.get("prov:endTime"), error=info.get("error"), run=info,
    )
    for element in doc.get("entity", {}).values():
        kind, attrs = prov_type(element), attributes(element)
        if kind == "yprov:Parameter":
            value = attrs.get("value")
            if attrs.get("value_type") and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            view.params[attrs.get("key", attrs.get("prov:label"))] = value
        elif kind == "yprov:MetricSeries":
            data = _metric_series(view, attrs)
            if data is not None:
                view.metrics[attrs["key"], attrs["context"]] = data
        elif kind == "yprov:Artifact":
            view.artifacts.append(attrs)
        elif kind == "yprov:ModelVersion":
            view.models.append(attrs)
        elif kind == "yprov:Dataset":
            view.datasets.append(attrs)
        elif kind == "yprov:SourceCode":
            view.source = attrs
        elif kind == "yprov:Environment":
            view.environment = attrs
    view.models.sort(key=lambda m: (m.get("model_name", ""), m.get("version", 0)))
    if view.problems:
        warnings.warn(f"{prov_path}: " + "; ".join(view.problems), DamagedRunWarning, stacklevel=2)
    return view


def _metric_series(view: RunView, attrs: dict[str, Any]) -> MetricData | None:
    """One series read back and checked against the count its document records (problems noted)."""
    key, context, count = attrs["key"], attrs["context"], int(attrs.get("count") or 0)
    location = resolve_inside(view.run_dir, str(attrs.get("prov:location", "")))
    if location is None:
        view.problems.append(f"metric {key!r} ({context}): its location {attrs.get('prov:location')!r} is outside "
                             "the run directory; it was not read")
        return None
    if not location.is_file():
        if count:
            raise NotARunError(f"{view.prov_path}: the metric file {location} of {key!r} "
                               f"({count} points) is missing; was the run directory copied in part?")
        return MetricData(key, context, view.rank, [], [], [], attrs.get("unit"))  # opened, no point flushed
    try:
        data = read_metric_file(location)
    except (OSError, ValueError) as exc:
        view.problems.append(f"metric {key!r} ({context}): {exc}")
        return None
    if data.truncated:
        view.problems.append(f"metric {key!r} ({context}): {data.skipped_bytes} damaged byte(s) in {location.name} "
                             "were skipped")
    if len(data) != count:
        view.problems.append(f"metric {key!r} ({context}): {len(data)} point(s) read, the document records {count}")
    return data
