"""What the index keeps of one PROV-JSON document: its runs' ranks, params, metric summaries, contexts,
tags and files, and a workflow's tasks, data and the runs its tasks ran.

Only the documents are read (a series' last/min/max/count are in its entity), never a metric file, so a
run is indexed at the cost of parsing its JSON. Rank documents nested in a container (a merged document,
an experiment document, a workflow bundle) are read as the rank documents they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from ..integrations.mlflow_names import param_text
from ..prov.decode import attributes, prov_type, rank_document, run_activity
from ..prov.reader import parameter_value
from ..storage.files import resolve_inside
from ..storage.layout import run_dir_of

FILE_TYPES = {"yprov:Artifact": "artifact", "yprov:ModelVersion": "model", "yprov:Dataset": "dataset",
              "yprov:Data": "data", "yprov:SourceCode": "source"}
# run attributes that have their own column; the other scalar attributes of the run are its tags
_RUN_COLUMNS = {"run_id", "experiment", "status", "rank", "world_size", "prov:startTime", "prov:endTime",
                "prov:type", "prov:label", "error", "host", "parent_task_id", "parent_workflow_id"}


@dataclass
class RankRows:
    """One rank of one run, as one document holds it."""
    run_id: str
    run_dir: str
    rank: int
    world_size: int
    experiment: str
    status: str
    start_time: str | None
    end_time: str | None
    user: str
    host: str
    error: str | None
    task_id: str | None
    workflow_id: str | None
    source: str  # "rank": its own file; "bundle": a copy inside a container document
    prov_path: str
    params: list[tuple[str, str, float | None]] = field(default_factory=list)  # key, MLflow text, number
    values: dict[str, Any] = field(default_factory=dict)  # key → the param's own value (what a search shows)
    metrics: list[tuple[str, str, Any, Any, Any, int]] = field(default_factory=list)  # key, context, last, min, max, n
    contexts: list[str] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    files: list["FileRow"] = field(default_factory=list)
    derivations: list[tuple[str, str]] = field(default_factory=list)  # (derived entity, source entity)


@dataclass
class FileRow:
    """A file an activity used or generated (or that a record names), by content."""
    role: str  # "used", "generated" or "recorded"
    kind: str  # artifact, model, dataset, data, source
    label: str
    place: str  # prov:location as the document writes it
    sha256: str | None
    entity: str
    base: str  # the directory a relative place is inside of (the run directory, the workflow's)

    @property
    def location(self) -> str:
        """The absolute path of a place inside ``base``; any other place as written."""
        if not self.place or Path(self.place).is_absolute():
            return self.place
        inside = resolve_inside(Path(self.base), self.place.partition("#")[0])
        return str(inside) if inside is not None else self.place


@dataclass
class TaskRows:
    task_id: str
    label: str
    status: str
    start_time: str | None
    end_time: str | None
    error: str | None
    command: str | None
    files: list[FileRow] = field(default_factory=list)
    runs: list[tuple[str, str, int]] = field(default_factory=list)  # run_id, run_dir, rank


@dataclass
class WorkflowRows:
    workflow_id: str
    name: str
    status: str
    start_time: str | None
    end_time: str | None
    error: str | None
    directory: str
    tasks: list[TaskRows] = field(default_factory=list)


@dataclass
class CollectionRows:
    run_id: str
    run_dir: str
    status: str
    world_size: int
    ranks_recorded: int
    missing_ranks: str
    nodes: str


@dataclass
class DocumentRows:
    """Everything the index keeps of one document."""
    kind: str  # rank, merged, collection, workflow
    ranks: list[RankRows] = field(default_factory=list)
    workflows: list[WorkflowRows] = field(default_factory=list)
    collections: list[CollectionRows] = field(default_factory=list)


def time_ms(text: Any) -> int | None:
    """Milliseconds since the epoch of an ISO time (MLflow's unit for start_time and end_time)."""
    try:
        return round(datetime.fromisoformat(str(text)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def extract(path: Path, data: Any, nested: list[RankRows] | None = None) -> DocumentRows:
    """The rows of a parsed document; DocumentError when it is none of the kinds the index reads.

    ``nested``: the ranks of its bundles, read already (a streamed document's ``data`` holds no bundles).
    """
    if not isinstance(data, dict):
        raise DocumentError(f"{path}: not a PROV-JSON object")
    activities = data.get("activity") if isinstance(data.get("activity"), dict) else {}
    kinds = {prov_type(a) for a in activities.values() if isinstance(a, dict)}
    bundles = nested is not None or isinstance(data.get("bundle"), dict)
    if run_activity(data) is not None:
        return DocumentRows("rank", ranks=[_rank_rows(path, data, run_dir_of(path), "rank")])
    if "yprov:WorkflowExecution" in kinds:
        return _workflow_rows(path, data, nested)
    if "yprov:DistributedRun" in kinds and not bundles:
        return DocumentRows("collection", collections=_collection_rows(path, activities))
    if bundles:
        return DocumentRows("merged", ranks=nested if nested is not None else _nested_ranks(path, data))
    raise DocumentError(f"{path}: neither a run, merged, collection nor workflow document of yprov4ml")


def _rank_rows(path: Path, data: dict[str, Any], run_dir: Path, source: str) -> RankRows:
    doc = rank_document(path, data)
    run = doc.run
    user = next((str(attributes(a).get("prov:label", "")) for a in (data.get("agent") or {}).values()
                 if isinstance(a, dict) and prov_type(a) == "prov:Person"), "")
    rows = RankRows(
        run_id=doc.run_id, run_dir=str(run_dir), rank=doc.rank, world_size=doc.world_size,
        experiment=str(run.get("experiment", "")), status=str(run.get("status", "UNKNOWN")),
        start_time=_text(run.get("prov:startTime")), end_time=_text(run.get("prov:endTime")), user=user,
        host=str(run.get("host") or run.get("node") or ""), error=_text(run.get("error")),
        task_id=_text(run.get("parent_task_id")), workflow_id=_text(run.get("parent_workflow_id")),
        source=source, prov_path=str(path) if source == "rank" else str(run_dir / path.name))
    rows.tags = [(key, str(value)) for key, value in run.items()
                 if key not in _RUN_COLUMNS and isinstance(value, (str, int, float, bool))]
    for (key, context), series in doc.metrics.items():
        rows.metrics.append((key, context, _number(series["last"]), _number(series["min"]), _number(series["max"]),
                             series["count"]))
    for element in (data.get("activity") or {}).values():
        if isinstance(element, dict) and prov_type(element) == "yprov:Context":
            found = attributes(element)
            rows.contexts.append(str(found.get("context", found.get("prov:label", ""))))
    roles = _roles(data)
    for entity_id, element in (data.get("entity") or {}).items():
        kind = prov_type(element) if isinstance(element, dict) else ""
        attrs = attributes(element)
        if kind == "yprov:Parameter":
            value = parameter_value(attrs)
            key = str(attrs.get("key", attrs.get("prov:label")))
            rows.params.append((key, param_text(value), _number(value)))
            rows.values[key] = value
        elif kind in FILE_TYPES:
            rows.files.append(_file_row(entity_id, kind, attrs, run_dir, roles))
    rows.derivations = _derivations(data)
    return rows


def _roles(data: dict[str, Any]) -> dict[str, str]:
    """entity → "used" / "generated", from the document's relations (generated wins: an output that was also
    read back is an output)."""
    roles: dict[str, str] = {}
    for relation, role in (("used", "used"), ("wasGeneratedBy", "generated")):
        for record in (data.get(relation) or {}).values():
            if isinstance(record, dict) and isinstance(record.get("prov:entity"), str):
                roles[record["prov:entity"]] = role
    return roles


def _file_row(entity_id: str, kind: str, attrs: dict[str, Any], base: Path, roles: dict[str, str]) -> FileRow:
    location = attrs.get("prov:location")
    role = roles.get(entity_id) or ("used" if attrs.get("is_input") is True or kind == "yprov:Dataset" else
                                    "generated" if kind == "yprov:ModelVersion" else "recorded")
    digest = attrs.get("sha256") or attrs.get("script_sha256")
    return FileRow(role, FILE_TYPES[kind], str(attrs.get("prov:label") or attrs.get("name") or entity_id),
                   location if isinstance(location, str) else "", str(digest) if isinstance(digest, str) else None,
                   entity_id, str(base))


def _derivations(data: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for record in (data.get("wasDerivedFrom") or {}).values():
        if isinstance(record, dict):
            derived, source = record.get("prov:generatedEntity"), record.get("prov:usedEntity")
            if isinstance(derived, str) and isinstance(source, str):
                found.append((derived, source))
    return found


def _nested_ranks(path: Path, data: dict[str, Any]) -> list[RankRows]:
    """The rank documents inside a container's bundles, each in the run directory its entity names."""
    ranks = [found for identifier, bundle in data["bundle"].items()
             if (found := bundle_rank(path, identifier, bundle)) is not None]
    return placed(path, data, ranks)


def bundle_rank(path: Path, identifier: str, bundle: Any) -> tuple[str, RankRows] | None:
    """One bundle of a container read as the rank document it holds (None: not one, or a damaged copy, which
    leaves the rest of the container indexed); its run directory is set by ``placed``."""
    if not isinstance(bundle, dict) or run_activity(bundle) is None:
        return None
    try:
        return identifier, _rank_rows(path, bundle, path.parent, "bundle")
    except DocumentError:
        return None


def placed(path: Path, data: dict[str, Any], ranks: list[tuple[str, RankRows]]) -> list[RankRows]:
    """The nested ranks moved to the run directories their bundle entities name (``prov:location`` of the
    original rank document); a bundle no entity places stays in the container's directory."""
    places = {identifier: attributes(e).get("prov:location") for identifier, e in (data.get("entity") or {}).items()
              if isinstance(e, dict)}
    out = []
    for identifier, rows in ranks:
        location = places.get(identifier)
        original = Path(location) if isinstance(location, str) and location.endswith(".json") else None
        run_dir = original.parent if original is not None and original.is_absolute() else path.parent
        rows.run_dir, rows.prov_path = str(run_dir), str(run_dir / (original.name if original else path.name))
        for item in rows.files:
            item.base = str(run_dir)
        out.append(rows)
    return out


def _collection_rows(path: Path, activities: dict[str, Any]) -> list[CollectionRows]:
    rows = []
    for element in activities.values():
        if isinstance(element, dict) and prov_type(element) == "yprov:DistributedRun":
            attrs = attributes(element)
            rows.append(CollectionRows(str(attrs.get("run_id", "")), str(path.parent), str(attrs.get("status", "")),
                                       int(attrs.get("world_size") or 0), int(attrs.get("ranks_recorded") or 0),
                                       str(attrs.get("missing_ranks", "[]")), str(attrs.get("nodes", "[]"))))
    return rows


def _workflow_rows(path: Path, data: dict[str, Any], ranks: list[RankRows] | None = None) -> DocumentRows:
    activities = data.get("activity") or {}
    entities = {k: v for k, v in (data.get("entity") or {}).items() if isinstance(v, dict)}
    workflow = next(attributes(a) for a in activities.values() if prov_type(a) == "yprov:WorkflowExecution")
    rows = WorkflowRows(str(workflow.get("workflow_id") or workflow.get("prov:label") or path.parent.name),
                        str(workflow.get("prov:label", "")), str(workflow.get("status", "UNKNOWN")),
                        _text(workflow.get("prov:startTime")), _text(workflow.get("prov:endTime")),
                        _text(workflow.get("error")), str(path.parent))
    tasks: dict[str, TaskRows] = {}
    for identifier, element in activities.items():
        if isinstance(element, dict) and prov_type(element) == "yprov:Task":
            attrs = attributes(element)
            tasks[identifier] = TaskRows(str(attrs.get("task_id") or attrs.get("prov:label") or identifier),
                                         str(attrs.get("prov:label", "")), str(attrs.get("status", "UNKNOWN")),
                                         _text(attrs.get("prov:startTime")), _text(attrs.get("prov:endTime")),
                                         _text(attrs.get("error")), _text(attrs.get("command")))
    for relation, role in (("used", "used"), ("wasGeneratedBy", "generated")):
        for record in (data.get(relation) or {}).values():
            task = tasks.get(record.get("prov:activity")) if isinstance(record, dict) else None
            entity_id = record.get("prov:entity") if task is not None else None
            entity = entities.get(entity_id) if isinstance(entity_id, str) else None
            if entity is None:
                continue
            kind = prov_type(entity)
            if kind in FILE_TYPES:
                task.files.append(_file_row(entity_id, kind, attributes(entity), path.parent, {entity_id: role}))
            elif "yprov:RunBundle" in json.dumps(entity.get("prov:type")):
                attrs = attributes(entity)
                location = attrs.get("prov:location")
                run_dir = str(Path(location).parent) if isinstance(location, str) else ""
                if isinstance(attrs.get("run_id"), str) and isinstance(attrs.get("rank"), int):
                    task.runs.append((attrs["run_id"], run_dir, attrs["rank"]))
    rows.tasks = list(tasks.values())
    if ranks is None:
        ranks = _nested_ranks(path, data) if isinstance(data.get("bundle"), dict) else []
    return DocumentRows("workflow", ranks=ranks, workflows=[rows])

