"""Is this valid PROV-JSON? The prov round-trip and the W3C PROV-JSON schema.

A document too large to parse whole is checked one bundle at a time, as it is read (``validate_streamed``):
each bundle with the document's prefixes, then dropped; the document's own records (the merged run, its
per-metric summaries, one entity and one membership per rank) last, 8 MB of them at a time. Memory is one
bundle's and one slice's, not the document's. A bundle or a section too large even for that is reported as
such ("too big for this check"), never as INVALID.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from ..errors import DocumentError
from ..storage import json_stream
from ..storage.files import read_json

_NOT_RECORDS = {"prefix", "bundle"}


@dataclass
class ValidationReport:
    """What the two checks found; ``ok`` when both pass."""

    path: str
    json_records: int = 0
    prov_records: int = 0
    schema_errors: list[str] = field(default_factory=list)
    prov_error: str | None = None
    undefined_terms: list[str] = field(default_factory=list)  # yprov: names the vocabulary lacks: a note only
    too_big: str | None = None  # why this check could not hold the document: not a verdict on it

    @property
    def ok(self) -> bool:
        return self.too_big is None and not self.problems()

    def problems(self) -> list[str]:
        """What makes the document invalid (nothing when it is too big to check: that is no verdict)."""
        if self.too_big is not None:
            return []
        found = list(self.schema_errors)
        if self.prov_error:
            found.append(f"prov cannot read it: {self.prov_error}")
        elif self.json_records != self.prov_records:
            found.append(f"prov read {self.prov_records} records where the JSON has {self.json_records}")
        elif self.json_records == 0:  # {} passes the schema, but records nothing: no document of anything
            found.append("it holds no PROV record (no entity, activity, agent or relation)")
        return found


@lru_cache(maxsize=1)
def prov_json_schema() -> dict:
    """The W3C PROV-JSON schema shipped in the prov wheel, with its ``wasEndedby`` typo accounted for.

    The schema spells the end relation ``wasEndedby`` while the PROV-JSON
    submission and every serializer write ``wasEndedBy``; both are accepted.
    """
    import prov

    path = Path(prov.__file__).parent / "tests" / "schemas" / "prov-json.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema = copy.deepcopy(schema)
    for holder in (schema, schema["definitions"]["bundle"]):
        props = holder.get("properties", {})
        if "wasEndedby" in props:
            props["wasEndedBy"] = props["wasEndedby"]
    return schema


@lru_cache(maxsize=1)
def _schema_validator():
    import jsonschema

    schema = prov_json_schema()
    return jsonschema.validators.validator_for(schema)(schema)


@lru_cache(maxsize=1)
def _fast_check():
    import fastjsonschema

    # Compiled to Python: ~15x faster than jsonschema, which only runs when this says no (for its messages).
    # Formats are not checked: PROV-JSON's "uri" fields hold QNames ("run:rank-0", "_:id1").
    return fastjsonschema.compile(prov_json_schema(), use_formats=False)


def schema_errors(data: Any) -> list[str]:
    """The W3C PROV-JSON schema's complaints about ``data`` (empty when it conforms)."""
    import fastjsonschema

    try:
        _fast_check()(data)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    return [
        f"schema: {'/'.join(map(str, err.absolute_path)) or '(root)'}: {err.message}"
        for err in sorted(_schema_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ] or ["schema: rejected by the compiled PROV-JSON schema"]


def count_records(document: dict) -> int:
    """Records in a PROV-JSON object, bundles' contents included."""
    total = sum(len(v) for k, v in document.items() if k not in _NOT_RECORDS and isinstance(v, dict))
    for bundle in (document.get("bundle") or {}).values():
        total += count_records(bundle)
    return total


def validate_document(data: dict[str, Any], path: str = "<document>") -> ValidationReport:
    """Check a parsed PROV-JSON object against the schema and the prov round-trip."""
    import io

    from prov.serializers.provjson import ProvJSONSerializer

    from .vocabulary import undefined_terms

    try:
        report = ValidationReport(path=path, json_records=count_records(data))
        report.schema_errors = schema_errors(data)
        report.undefined_terms = undefined_terms(data)
    except RecursionError:
        report = ValidationReport(path=path, prov_error="nested too deeply to be a PROV-JSON document")
        return report
    import warnings

    try:
        # prov drops what it cannot resolve (an undeclared prefix) with a warning: that is a defect here.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            doc = ProvJSONSerializer().deserialize(io.StringIO(json.dumps(data)))
    except Exception as exc:  # prov raises many kinds; the message is what matters
        report.prov_error = f"{type(exc).__name__}: {exc}"
        return report
    dropped = [str(w.message) for w in caught if "prov" in type(w.message).__name__.lower()
               or "prov" in (w.filename or "")]
    if dropped:
        report.prov_error = f"prov dropped or would reject parts of it: {dropped[0]}" + \
            (f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else "")
    report.prov_records = len(doc.get_records()) + sum(len(b.get_records()) for b in doc.bundles)
    return report


def validate_file(path: str | os.PathLike) -> ValidationReport:
    """Validate a PROV-JSON file; unreadable or non-JSON files give a report with the reason. A file above
    ``STREAM_BYTES`` is checked one bundle at a time (``validate_streamed``), in the memory of one bundle."""
    report = ValidationReport(path=str(path))
    try:
        if Path(path).stat().st_size > json_stream.STREAM_BYTES:
            return validate_streamed(Path(path))
    except OSError as exc:
        report.prov_error = f"cannot read it: {exc.strerror or exc}"
        return report
    try:
        data = read_json(Path(path))
    except DocumentError as exc:
        report.prov_error = f"cannot read JSON: {exc}"
        return report
    if not isinstance(data, dict):
        report.prov_error = "not a PROV-JSON document: the top level is not a JSON object"
        return report
    return validate_document(data, str(path))


MAX_PART_BYTES = 1 << 28  # 256 MiB: the largest one bundle (or the top level) may be for the prov round trip
CHUNK_BYTES = 8 * 2**20  # the document's own records are checked this much at a time
MAX_NOTED = 20  # problems kept (a broken writer repeats one problem in every bundle)


def validate_streamed(path: Path) -> ValidationReport:
    """The report of ``validate_document``, summed over the bundles and the document's own records."""
    report = ValidationReport(path=str(path))
    top: dict[str, Any] = {}
    terms: set[str] = set()

    def check(identifier: str, bundle: Any) -> None:
        part = validate_document({"prefix": top.get("prefix", {}), "bundle": {identifier: bundle}},
                                 f"{path} bundle {identifier}")
        _add(report, part, f"bundle {identifier}: ")
        terms.update(part.undefined_terms)

    try:
        json_stream.stream_document(path, check, top=top, max_part_bytes=MAX_PART_BYTES)
    except json_stream.PartTooBig as exc:
        report.too_big = str(exc).replace(f"{path}: ", "")
        return report
    except DocumentError as exc:
        report.prov_error = f"cannot read JSON: {exc}"
        return report
    own = {k: v for k, v in top.items() if k != "bundle"}
    prefix = own.get("prefix", {})
    parts = [{"prefix": prefix, kind: chunk} for kind, records in own.items() if kind != "prefix" and
             isinstance(records, dict) for chunk in _chunks(records)]
    odd = {k: v for k, v in own.items() if k == "prefix" or not isinstance(v, dict)}
    if any(k != "prefix" for k in odd) or not (parts or report.json_records):  # what the schema refuses, or no record at all
        parts.append(odd)
    for document in parts:  # the document's own records, a slice at a time: each is checked on its own
        part = validate_document(document, str(path))
        _add(report, part, "")
        terms.update(part.undefined_terms)
    report.undefined_terms = sorted(terms)
    return report


def _chunks(records: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Slices of a kind of record, of at most ``CHUNK_BYTES`` of JSON each (a record is checked alone: PROV
    does not ask that what it refers to be in the same slice)."""
    chunk: dict[str, Any] = {}
    size = 0
    for identifier, record in records.items():
        chunk[identifier] = record
        size += len(json.dumps(record, ensure_ascii=False, default=str))
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


def _add(report: ValidationReport, part: ValidationReport, where: str) -> None:
    report.json_records += part.json_records
    report.prov_records += part.prov_records
    if len(report.schema_errors) < MAX_NOTED:
        report.schema_errors += [f"{where}{e}" for e in part.schema_errors][: MAX_NOTED - len(report.schema_errors)]
    if part.prov_error and report.prov_error is None:
        report.prov_error = f"{where}{part.prov_error}"
