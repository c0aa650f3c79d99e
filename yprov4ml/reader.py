"""Reading a recorded run back: parameters, metric series, artifacts, models, status."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NotARunError
from .metrics import MetricData, read_metric_file

_INTEGER_TYPES = {"xsd:int", "xsd:integer", "xsd:long", "xsd:short", "xsd:nonNegativeInteger",
                  "xsd:unsignedInt", "xsd:unsignedLong", "xsd:positiveInteger"}


def decode(value: Any) -> Any:
    """A PROV-JSON attribute value as a Python value (typed literals decoded)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict) or "$" not in value:
        return value
    text, kind = value["$"], value.get("type", "")
    if kind in ("xsd:double", "xsd:float", "xsd:decimal"):
        return float(text)
    if kind in _INTEGER_TYPES:
        return int(text)
    if kind == "xsd:boolean":
        return text in ("true", "1")
    return text


def attributes(element: dict[str, Any]) -> dict[str, Any]:
    """``{"yprov:count": {...}}`` → ``{"count": 3}`` for the yprov vocabulary; prov: keys kept as is."""
    out = {}
    for key, value in element.items():
        name = key.split(":", 1)[1] if key.startswith("yprov:") else key
        out[name] = decode(value)
    return out


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

    def metric(self, key: str, context: str = "training") -> MetricData:
        """One series; KeyError lists the series that exist."""
        try:
            return self.metrics[key, context]
        except KeyError:
            known = ", ".join(f"{k}@{c}" for k, c in sorted(self.metrics)) or "none"
            raise KeyError(f"no metric {key!r} in context {context!r}; this run has: {known}") from None


_RANK_FILE = re.compile(r"^prov\.rank(\d+)\.json$")


def rank_documents(run_dir: Path) -> list[Path]:
    """The ``prov.rankN.json`` files of a run directory, in rank order (rank 2 before rank 10)."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("prov.rank*.json") if (m := _RANK_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def _prov_file(path: Path, rank: int) -> Path:
    if path.is_dir():
        candidate = path / f"prov.rank{rank}.json"
        if candidate.is_file():
            return candidate
        raise NotARunError(f"{path} is not a yprov4ml run directory: no prov.rank{rank}.json in it")
    if path.is_file():
        return path
    raise NotARunError(f"{path} does not exist")


def _prov_type(element: dict[str, Any]) -> str:
    kind = element.get("prov:type")
    return decode(kind) if kind is not None else ""


def load_run(path: str | Path, rank: int = 0) -> RunView:
    """Read a run directory (or one of its ``prov.rankN.json`` files)."""
    prov_path = _prov_file(Path(path), rank)
    try:
        doc = json.loads(prov_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotARunError(f"{prov_path} is not readable PROV-JSON: {exc}") from None
    activities = doc.get("activity", {}) if isinstance(doc, dict) else {}
    runs = [(k, v) for k, v in activities.items() if _prov_type(v) == "yprov:RunExecution"]
    if not runs:
        raise NotARunError(f"{prov_path} holds no yprov4ml run activity (prov:type yprov:RunExecution)")
    run_id, run_element = runs[0]
    info = attributes(run_element)
    run_dir = prov_path.parent
    view = RunView(
        run_dir=run_dir, prov_path=prov_path, run_id=info.get("run_id", run_id), experiment=info.get("experiment", ""),
        status=info.get("status", "UNKNOWN"), rank=int(info.get("rank", 0)), world_size=int(info.get("world_size", 1)),
        start_time=info.get("prov:startTime"), end_time=info.get("prov:endTime"), error=info.get("error"), run=info,
    )
    for element in doc.get("entity", {}).values():
        kind, attrs = _prov_type(element), attributes(element)
        if kind == "yprov:Parameter":
            value = attrs.get("value")
            if attrs.get("value_type") and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            view.params[attrs.get("key", attrs.get("prov:label"))] = value
        elif kind == "yprov:MetricSeries":
            location = run_dir / attrs["prov:location"]
            if location.is_file():
                view.metrics[attrs["key"], attrs["context"]] = read_metric_file(location)
            elif not attrs.get("count"):  # opened, but no point reached the disk (a killed run)
                view.metrics[attrs["key"], attrs["context"]] = MetricData(attrs["key"], attrs["context"], view.rank,
                                                                          [], [], [], attrs.get("unit"))
            else:
                raise NotARunError(f"{prov_path}: the metric file {location} of {attrs['key']!r} "
                                   f"({attrs['count']} points) is missing; was the run directory copied in part?")
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
    return view
