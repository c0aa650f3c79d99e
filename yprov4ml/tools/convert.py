"""PROV-JSON to the other PROV serializations — PROV-N, Turtle (TriG for bundles), PROV-XML — with prov's own.

Turtle and PROV-XML need rdflib and lxml (the ``convert`` extra). A document
with bundles (the bridge's multi-level bundle) is written as TriG, Turtle's
superset with named graphs, since plain Turtle has no place for a bundle.
"""

from __future__ import annotations

import io
import json
from importlib.util import find_spec
from pathlib import Path

from prov.model import ProvDocument

from ..errors import DocumentError, NotARunError
from ..prov.decode import checked_schema
from ..storage.files import atomic_write_text, read_json

FORMATS = {"provn": ("provn", ".provn", None), "turtle": ("rdf", ".ttl", "rdflib"), "xml": ("xml", ".provx", "lxml")}


def read_prov_json(path: Path) -> ProvDocument:
    """A PROV-JSON file as a prov document (rank documents, collections and bundles alike)."""
    from prov.serializers.provjson import ProvJSONSerializer

    try:
        data = checked_schema(path, read_json(path))
        return ProvJSONSerializer().deserialize(io.StringIO(json.dumps(data)))
    except DocumentError as exc:
        raise NotARunError(str(exc)) from None
    except Exception as exc:  # prov raises many kinds on a schema-valid but unusual document
        raise NotARunError(f"{path}: prov cannot read it ({type(exc).__name__}: {exc})") from None


def serialize(doc: ProvDocument, to: str) -> tuple[str, str]:
    """(text, file suffix) of ``doc`` in format ``to`` (provn, turtle, xml)."""
    if to not in FORMATS:
        raise ValueError(f"unknown format {to!r}: use one of {', '.join(FORMATS)}")
    kind, suffix, needs = FORMATS[to]
    if needs and find_spec(needs) is None:
        raise ValueError(f"--to {to} needs {needs}: pip install 'yprov4ml[convert]'")
    if to == "provn":
        return doc.get_provn(), suffix
    if to == "turtle":
        bundled = bool(doc.bundles)
        return doc.serialize(format="rdf", rdf_format="trig" if bundled else "turtle"), ".trig" if bundled else suffix
    return doc.serialize(format="xml"), suffix


def convert(source: Path, to: str, output: Path | None = None) -> Path:
    """Write ``source`` (PROV-JSON) in format ``to``; returns the file written."""
    text, suffix = serialize(read_prov_json(source), to)
    target = output or source.with_name(source.name.removesuffix(".json").removesuffix(".prov") + suffix)
    atomic_write_text(target, text)
    return target
