"""PROV-JSON decoded back: typed values, the run activity of a document, and the rank document.

Every reader — ``load_run``, the collection, prov-merge, the bridge — goes
through these functions, so a document is understood the same way everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from ..storage.files import read_json, resolve_inside
from ..storage.layout import run_dir_of
from .validate import schema_errors

RUN_TYPE = "yprov:RunExecution"
MAX_WORLD_SIZE = 1 << 20  # ranks; a larger figure read from a file is refused before anything is sized by it
_INTEGER_TYPES = {"xsd:int", "xsd:integer", "xsd:long", "xsd:short", "xsd:nonNegativeInteger",
                  "xsd:unsignedInt", "xsd:unsignedLong", "xsd:positiveInteger"}


def decode(value: Any) -> Any:
    """A PROV-JSON attribute value as a Python value (typed literals decoded)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict) or "$" not in value:
        return value
    text, kind = value["$"], value.get("type", "")
    try:
        if kind in ("xsd:double", "xsd:float", "xsd:decimal"):
            return float(text)
        if kind in _INTEGER_TYPES:
            return int(text)
    except (TypeError, ValueError):  # a typed literal whose text is not of its type: keep the text
        return text
    if kind == "xsd:boolean":
        return text in ("true", "1")
    return text


def attributes(element: dict[str, Any]) -> dict[str, Any]:
    """``{"yprov:count": {...}}`` → ``{"count": 3}`` for the yprov vocabulary; prov: keys kept as is."""
    if not isinstance(element, dict):
        return {}
    out = {}
    for key, value in element.items():
        name = key.split(":", 1)[1] if key.startswith("yprov:") else key
        out[name] = decode(value)
    return out


def prov_type(element: dict[str, Any]) -> str:
    """The ``prov:type`` of a record, as text ('' when it has none). Of several types
    (``[prov:Bundle, yprov:RunBundle]``) the most specific: the first outside PROV's own namespace."""
    kind = element.get("prov:type") if isinstance(element, dict) else None
    if kind is None:
        return ""
    kinds = [str(k) for k in decode(kind)] if isinstance(kind, list) else [str(decode(kind))]
    return next((k for k in kinds if not k.startswith("prov:")), kinds[0] if kinds else "")


def run_activity(document: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The identifier and the raw element of a document's yprov4ml run activity, or None."""
    activities = document.get("activity") if isinstance(document, dict) else None
    if not isinstance(activities, dict):
        return None
    for identifier, element in activities.items():
        if prov_type(element) == RUN_TYPE:
            return identifier, element
    return None


@dataclass
class RankDocument:
    """One rank's PROV-JSON document, with its run activity and metric summaries decoded.

    ``task_id`` names the workflow task the document is attached to (the bridge sets it).
    """

    path: Path
    data: dict[str, Any]
    run_id: str
    rank: int
    run: dict[str, Any]
    world_size: int = 1
    metrics: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    task_id: str | None = None

    @property
    def status(self) -> str:
        return str(self.run.get("status", "UNKNOWN"))


def rank_document(path: Path, data: dict[str, Any], task_id: str | None = None) -> RankDocument:
    """The rank document of a parsed PROV-JSON object; DocumentError when it is not a yprov4ml one."""
    found = run_activity(data)
    if found is None:
        raise DocumentError(f"{path}: not a yprov4ml run document (no activity of prov:type {RUN_TYPE})")
    identifier, element = found
    run = attributes(element)
    rank, world = run.get("rank"), run.get("world_size", 1)
    if not isinstance(run.get("run_id"), str) or not isinstance(rank, int) or isinstance(rank, bool):
        raise DocumentError(f"{path}: the run activity {identifier} lacks a run_id or an integer rank")
    if not isinstance(world, int) or isinstance(world, bool) or not 1 <= world <= MAX_WORLD_SIZE or \
            not 0 <= rank < world:
        raise DocumentError(f"{path}: the run activity {identifier} has rank {rank!r} of world size {world!r}; "
                            f"a world size is a whole number from 1 to {MAX_WORLD_SIZE}, above the rank")
    doc = RankDocument(path, data, run["run_id"], rank, run, world, task_id=task_id)
    for entity_id, entity in (data.get("entity") or {}).items():
        if prov_type(entity) == "yprov:MetricSeries":
            attrs = attributes(entity)
            count = attrs.get("count") or 0
            if not isinstance(count, int) or count < 0:
                raise DocumentError(f"{path}: metric series {entity_id} has count {count!r}")
            doc.metrics[str(attrs["key"]), str(attrs["context"])] = {
                "id": entity_id, "last": attrs.get("last_value"), "min": attrs.get("min"),
                "max": attrs.get("max"), "count": count,
            }
    return doc


_IMPLICIT_PREFIXES = {"prov", "xsd", "_"}  # prov knows these without a declaration; "_" is a blank node
_REFERENCES = {"prov:entity", "prov:activity", "prov:agent", "prov:generatedEntity", "prov:usedEntity",
               "prov:collection", "prov:delegate", "prov:responsible", "prov:informed", "prov:informant",
               "prov:trigger", "prov:starter", "prov:ender", "prov:plan", "prov:alternate1", "prov:alternate2",
               "prov:specificEntity", "prov:generalEntity", "prov:influencer", "prov:influencee",
               "prov:generation", "prov:usage", "prov:bundle"}


_PREFIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+")


def bad_prefixes(document: dict[str, Any]) -> list[str]:
    """Prefix declarations (bundles included) that are no name bound to an absolute IRI."""
    bad = [f"{name!r} → {iri!r}" for name, iri in (document.get("prefix") or {}).items()
           if name != "default" and (not _PREFIX_NAME.fullmatch(str(name)) or not isinstance(iri, str)
                                     or not _ABSOLUTE_IRI.fullmatch(iri))]
    for bundle in (document.get("bundle") or {}).values():
        if isinstance(bundle, dict):
            bad += bad_prefixes(bundle)
    return bad


_TIMES = {"prov:startTime", "prov:endTime", "prov:time"}
_QNAME_TYPES = {"xsd:QName", "prov:QUALIFIED_NAME"}
_QNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*:[^\s<>\"{}|\\^`]*")  # prefix:local (local may be empty: "ex:")


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _prefix_of(name: Any, declared: set[str]) -> str:
    """The prefix a name needs declared, or a description of why it is no qualified name."""
    if isinstance(name, str) and ":" not in name and "default" in declared and _PREFIX_NAME.fullmatch(name):
        return "default"  # an unprefixed name in the document's default namespace
    if not isinstance(name, str) or not _QNAME.fullmatch(name):
        return f"{name!r} (not a qualified name)"
    return name.split(":", 1)[0]


def unreadable_parts(document: dict[str, Any]) -> set[str]:
    """What prov's reader would reject although the schema allows it (bundles included): prefixes used by
    identifiers, references, attribute names and literal types but not declared, names that are no
    qualified names, and times that are no xsd:dateTime.

    prov cannot read such a document; one that has them would make every
    document built from it (a merge, a bundle) unreadable too.
    """
    declared = set(document.get("prefix") or {}) | _IMPLICIT_PREFIXES
    used: set[str] = set()
    for kind, records in document.items():
        if kind in ("prefix", "bundle") or not isinstance(records, dict):
            continue
        for identifier, record in records.items():
            names = [identifier] + ([v for k, v in record.items() if k in _REFERENCES and isinstance(v, str)]
                                    if isinstance(record, dict) else [])
            for name in names:
                used.add(_prefix_of(name, declared))
            for key, value in (record.items() if isinstance(record, dict) else ()):
                names = [key]  # an attribute's name is a qualified name too
                for literal in (value if isinstance(value, list) else [value]):
                    if isinstance(literal, dict) and "type" in literal:  # a typed literal: its type is a QName
                        names.append(literal["type"])
                        if literal["type"] in _QNAME_TYPES:  # ... and so is its value
                            names.append(literal.get("$"))
                for name in names:
                    used.add(_prefix_of(name, declared))
            for key in _TIMES & (set(record) if isinstance(record, dict) else set()):
                if not _is_datetime(record[key]):
                    used.add(f"{key} of {identifier} (not an xsd:dateTime)")
    missing = used - declared
    for bundle in (document.get("bundle") or {}).values():
        if isinstance(bundle, dict):
            missing |= unreadable_parts({**bundle, "prefix": {**(document.get("prefix") or {}),
                                                                **(bundle.get("prefix") or {})}})
    return missing


def checked_schema(path: Path, data: Any) -> dict[str, Any]:
    """``data`` when it is a PROV-JSON object valid under the W3C schema; DocumentError otherwise."""
    if not isinstance(data, dict):
        raise DocumentError(f"{path}: not PROV-JSON (the top level must be an object with PROV record types)")
    try:
        problems = schema_errors(data)
    except RecursionError:
        raise DocumentError(f"{path}: nested too deeply to be a PROV-JSON document") from None
    if problems:
        raise DocumentError(f"{path}: not valid PROV-JSON ({problems[0]}"
                            f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''})")
    bad = bad_prefixes(data)
    if bad:
        raise DocumentError(f"{path}: not valid PROV-JSON (prefix {bad[0]}: a prefix is a name bound to an "
                            "absolute IRI, such as \"ex\": \"http://example.org/\")")
    missing = unreadable_parts(data)
    if missing:
        raise DocumentError(f"{path}: not valid PROV-JSON (undeclared prefixes or bad times: {sorted(missing)[:5]})")
    return data


def load_rank_document(path: Path, task_id: str | None = None) -> RankDocument:
    """Read and check one file: JSON, valid under the PROV-JSON schema, with a yprov4ml run activity."""
    data = checked_schema(path, read_json(path))
    try:
        return rank_document(path, data, task_id)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"{path}: a yprov4ml record in it is malformed ({type(exc).__name__}: {exc})") from None


FILE_TYPES = ("yprov:MetricSeries", "yprov:ModelVersion", "yprov:Artifact")
# the attributes whose text is a place in the run directory (a location may end in #fragment: a part of a file)
_PLACE_ATTRIBUTES = ("prov:location", "yprov:snapshot", "yprov:uncommitted_patch", "yprov:layers_description",
                     "yprov:exported_as", "yprov:mlflow_model")


def document_files(doc: RankDocument) -> list[tuple[str, str, Path | None]]:
    """(prov:type, location, resolved path or None) of every file a rank document names.

    A location resolves only inside the document's run directory, symlinks
    included; one that would leave it (``/etc/passwd``, ``../../x``, a link to
    ``/etc/shadow``) resolves to None and is never read or copied.
    """
    out = []
    for entity in (doc.data.get("entity") or {}).values():
        kind = prov_type(entity)
        location = entity.get("prov:location") if isinstance(entity, dict) else None
        if kind in FILE_TYPES and isinstance(location, str):
            out.append((kind, location, resolve_inside(run_dir_of(doc.path), location)))
    return out


def record_places(doc: RankDocument) -> list[str]:
    """Every place in the run directory that a rank document names, as the document writes it (fragment
    dropped): metric files, model versions, artifacts, the journal that holds the random states, the source
    snapshot, metric exports. A place that would leave the run directory is left out, as in
    ``document_files``."""
    found: set[str] = set()
    base = run_dir_of(doc.path).resolve()
    for entity in (doc.data.get("entity") or {}).values():
        if not isinstance(entity, dict):
            continue
        for key in _PLACE_ATTRIBUTES:
            place = entity.get(key)
            place = place.partition("#")[0] if isinstance(place, str) else None
            path = resolve_inside(base, place) if place else None
            if path is not None and path != base:
                found.add(path.relative_to(base).as_posix())
    return sorted(found)


def record_files(doc: RankDocument) -> list[Path]:
    """The files and folders of ``record_places`` that exist: what a copy of the record needs to be read,
    checked and reproduced elsewhere."""
    base = run_dir_of(doc.path).resolve()
    return [path for place in record_places(doc) if (path := base / place).exists()]
