"""Validating a document too large to parse whole: each bundle checked on its own, as it is read.

A merged record of tens of thousands of ranks is its bundles, each a rank document. Each bundle is checked
with the document's prefixes — the W3C schema and the prov round trip, as ``validate_document`` checks a
whole document — then dropped; the document's own records (the merged run, its per-metric summaries, one
entity and one membership per rank) are checked last, 8 MB of them at a time. Memory is one bundle's
and one slice's, not the document's. A bundle or a section too large even for that is reported as such ("too big for this
check"), never as INVALID.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..errors import DocumentError
from ..storage.json_stream import PartTooBig, stream_document
from .validate import ValidationReport, validate_document

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
        stream_document(path, check, top=top, max_part_bytes=MAX_PART_BYTES)
    except PartTooBig as exc:
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
