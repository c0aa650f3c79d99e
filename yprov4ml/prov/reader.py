"""Reading a recorded run back: parameters, metric series, artifacts, models, status."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotARunError
from ..storage.files import read_json, resolve_inside
from ..storage.layout import located, prov_file, rank_documents, run_dir_of
from ..storage.metric_file import MetricData, MetricsFile, read_metrics_file
from ..storage.metric_file_v1 import read_metric_file
from ..errors import DocumentError
from ..storage.json_stream import STREAM_BYTES, stream_document
from ..storage.latest import resolve_latest
from .decode import attributes, checked_schema, prov_type, rank_document, run_activity

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
    user: str = ""  # the person the run was associated with
    run: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[tuple[str, str], MetricData] = field(default_factory=dict)  # numbers and vectors (``kind``)
    sample_indices: dict[tuple[str, str], MetricData] = field(default_factory=dict)  # which samples each step used
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    randomness: dict[str, Any] = field(default_factory=dict)  # RNG states file, generators used and seeded
    contexts: dict[str, str | None] = field(default_factory=dict)  # every context → its parent context, or None
    problems: list[str] = field(default_factory=list)  # damaged or missing metric data, said plainly

    def context_path(self, context: str) -> str:
        """``training/lod2/lod3``: a context after the contexts it is part of (a loop read from a file stops)."""
        path, seen = [context], {context}
        while (parent := self.contexts.get(path[0])) and parent not in seen:
            path.insert(0, parent)
            seen.add(parent)
        return "/".join(path)

    def _repr_html_(self) -> str:
        """The run as HTML tables in Jupyter: facts, params, metrics, model versions."""
        from ..search.notebook import run_html

        return run_html(self)

    def metric(self, key: str, context: str = "training") -> MetricData:
        """One series; KeyError lists the series that exist."""
        try:
            return self.metrics[key, context]
        except KeyError:
            known = ", ".join(f"{k}@{c}" for k, c in sorted(self.metrics)) or "none"
            raise KeyError(f"no metric {key!r} in context {context!r}; this run has: {known}") from None


def find_prov_file(path: Path, rank: int) -> Path:
    """The rank document named by a run directory or a file path (``EXP_DIR/latest``: the newest run);
    NotARunError otherwise."""
    path = resolve_latest(path)
    if path.is_dir():
        candidate = located(prov_file(path, rank))  # also where another $YPROV4ML_RANKS_PER_DIRECTORY put it
        if candidate.is_file():
            return candidate
        raise NotARunError(f"{path} is not a yprov4ml run directory: no prov.rank{rank}.json in it")
    if path.is_file():
        return path
    raise NotARunError(f"{path} does not exist")


def merged_rank(path: Path, rank: int, top: Any = None) -> tuple[dict[str, Any], Path] | None:
    """Rank ``rank``'s bundle of a merged record (``yprov4ml merge``) and the run directory its files are in
    (where the rank's document was, else beside the merged file); None for another kind of document.
    ``top``: the document, when the caller parsed it already; else a record too large to parse whole is
    streamed, only that bundle kept."""
    wanted: dict[str, Any] = {}

    def keep(identifier: str, bundle: Any) -> None:
        if not wanted and isinstance(bundle, dict) and _rank_of(bundle) == rank:
            wanted[identifier] = bundle

    if top is None and path.stat().st_size > STREAM_BYTES:
        top, _ = stream_document(path, keep)
    else:
        top = read_json(path) if top is None else top
        for identifier, bundle in (top.get("bundle") or {}).items() if isinstance(top, dict) else ():
            keep(identifier, bundle)
    if not wanted:
        return None
    ((identifier, bundle),) = wanted.items()
    location = attributes((top.get("entity") or {}).get(identifier) or {}).get("prov:location")
    original = Path(location) if isinstance(location, str) and location.endswith(".json") else None
    run_dir = original.parent if original is not None and original.is_absolute() and original.parent.is_dir() \
        else path.parent
    return bundle, run_dir


def _rank_of(document: dict[str, Any]) -> int | None:
    found = run_activity(document)
    rank = attributes(found[1]).get("rank") if found is not None else None
    return rank if isinstance(rank, int) and not isinstance(rank, bool) else None


def load_run(path: str | Path, rank: int = 0) -> RunView:
    """Read a run directory, one of its ``prov.rankN.json`` files, or a merged record (rank ``rank``'s
    bundle)."""
    prov_path = find_prov_file(Path(path), rank)
    run_dir = run_dir_of(prov_path)
    try:
        # a merged record above STREAM_BYTES is streamed for its one bundle, never parsed whole
        merged = merged_rank(prov_path, rank) if prov_path.stat().st_size > STREAM_BYTES else None
        doc = merged[0] if merged is not None else checked_schema(prov_path, read_json(prov_path))
        if merged is None and run_activity(doc) is None:
            merged = merged_rank(prov_path, rank, doc)
        if merged is not None:
            doc, run_dir = merged
        found = rank_document(prov_path, doc)
    except DocumentError as exc:
        raise NotARunError(str(exc)) from None
    info = found.run
    view = RunView(
        run_dir=run_dir, prov_path=prov_path, run_id=found.run_id, experiment=str(info.get("experiment", "")),
        status=str(info.get("status", "UNKNOWN")), rank=found.rank, world_size=found.world_size,
        start_time=info.get("prov:startTime"), end_time=info.get("prov:endTime"), error=info.get("error"), run=info,
    )
    for element in (doc.get("activity") or {}).values():
        if isinstance(element, dict) and prov_type(element) == "yprov:Context":
            found_attrs = attributes(element)
            parent = found_attrs.get("parent_context")
            view.contexts[str(found_attrs.get("context", found_attrs.get("prov:label", "")))] = \
                parent if isinstance(parent, str) else None
    for element in (doc.get("agent") or {}).values():
        if isinstance(element, dict) and prov_type(element) == "prov:Person":
            view.user = str(attributes(element).get("prov:label", ""))
    files: dict[Path, MetricsFile | str] = {}  # each rank's metric file is read once, whatever its series
    for identifier, element in doc.get("entity", {}).items():
        try:
            _read_entity(view, prov_type(element), attributes(element), files)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, NotARunError):
                raise
            view.problems.append(f"entity {identifier} is malformed ({type(exc).__name__}: {exc}); it was skipped")
    view.models.sort(key=lambda m: (str(m.get("model_name", "")), m.get("version", 0)
                                    if isinstance(m.get("version"), int) else 0))
    if view.problems:
        warnings.warn(f"{prov_path}: " + "; ".join(view.problems), DamagedRunWarning, stacklevel=2)
    return view


def parameter_value(attrs: dict[str, Any]) -> Any:
    """The value of a ``yprov:Parameter`` (decoded attributes): a list or dict recorded as JSON comes back."""
    value = attrs.get("value")
    if attrs.get("value_type") and isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            pass
    return value


def _read_entity(view: RunView, kind: str, attrs: dict[str, Any], files: dict[Path, MetricsFile | str]) -> None:
    """Fold one entity of a rank document into the view."""
    if kind == "yprov:Parameter":
        view.params[attrs.get("key", attrs.get("prov:label"))] = parameter_value(attrs)
    elif kind in ("yprov:MetricSeries", "yprov:SampleIndices"):
        data = _metric_series(view, attrs, files)
        if data is not None:
            into = view.sample_indices if kind == "yprov:SampleIndices" else view.metrics
            into[attrs["key"], attrs["context"]] = data
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
    elif kind == "yprov:RandomState":
        view.randomness = attrs


def _metric_series(view: RunView, attrs: dict[str, Any], files: dict[Path, MetricsFile | str]) -> MetricData | None:
    """One series read back and checked against the count its document records (problems noted)."""
    key, context, count = attrs["key"], attrs["context"], int(attrs.get("count") or 0)
    if not isinstance(attrs.get("prov:location"), str):
        view.problems.append(f"metric {key!r} ({context}): it names no file (prov:location); it was not read")
        return None
    location = resolve_inside(view.run_dir, attrs["prov:location"])
    if location is None:
        view.problems.append(f"metric {key!r} ({context}): its location {attrs.get('prov:location')!r} is outside "
                             "the run directory; it was not read")
        return None
    kind = "indices" if attrs.get("prov:type") == "yprov:SampleIndices" else \
        "vector" if attrs.get("kind") == "vector" else "scalar"
    empty = MetricData(key, context, view.rank, [], [], [], attrs.get("unit"), kind=kind)
    if not location.is_file():
        if count:
            raise NotARunError(f"{view.prov_path}: the metric file {location} of {key!r} "
                               f"({count} points) is missing; was the run directory copied in part?")
        return empty  # opened, no point flushed
    number = attrs.get("series")
    try:
        if isinstance(number, int) and not isinstance(number, bool):
            if location not in files:
                try:
                    files[location] = read_metrics_file(location)
                except (OSError, ValueError) as exc:
                    files[location] = str(exc)
                else:
                    if files[location].skipped_bytes:  # said once for the file, whatever its series
                        view.problems.append(f"{files[location].skipped_bytes} damaged byte(s) in {location.name} "
                                             "were skipped")
            found = files[location]
            if isinstance(found, str):
                raise ValueError(found)
            data = found.series.get(number)
            if data is None:
                if count:
                    view.problems.append(f"metric {key!r} ({context}): series {number} is not in {location.name}")
                return empty
            if ((data.key, data.context) != (key, context) and data.key) or data.kind != kind:
                view.problems.append(f"metric {key!r} ({context}): series {number} of {location.name} is "
                                     f"{data.key!r} ({data.context}, {data.kind}); it was not read")
                return None
            data.key, data.context, data.unit = key, context, data.unit or attrs.get("unit")
        else:  # a run recorded before version 2: one file per series
            data = read_metric_file(location)
            if data.truncated:
                view.problems.append(f"metric {key!r} ({context}): {data.skipped_bytes} damaged byte(s) in "
                                     f"{location.name} were skipped")
    except (OSError, ValueError) as exc:
        view.problems.append(f"metric {key!r} ({context}): {exc}")
        return None
    if len(data) != count:
        view.problems.append(f"metric {key!r} ({context}): {len(data)} point(s) read, the document records {count}")
    return data
