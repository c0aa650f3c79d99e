"""PROV-JSON to the other PROV serializations — PROV-N, Turtle, TriG, N-Quads, PROV-XML — with prov's own.

The RDF forms and PROV-XML need rdflib and lxml (the ``convert`` extra); the
RDF forms carry every relation qualified and unqualified (``tools/rdf.py``).
Plain Turtle has no place for a bundle: a document with bundles (a merged run,
the bridge's multi-level bundle) is written as TriG, one named graph a bundle,
or refused when the file asked for would be read as Turtle.
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

# --to name → (file suffix, the module it needs)
FORMATS = {"provn": (".provn", None), "turtle": (".ttl", "rdflib"), "trig": (".trig", "rdflib"),
           "nquads": (".nq", "rdflib"), "xml": (".provx", "lxml")}
RDF_FORMATS = ("turtle", "trig", "nquads")
NAMED_GRAPH_SUFFIXES = {".trig": "trig", ".nq": "nquads"}


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


def serialize(doc: ProvDocument, to: str) -> str:
    """The text of ``doc`` in format ``to`` (provn, turtle, trig, nquads, xml)."""
    if to not in FORMATS:
        raise ValueError(f"unknown format {to!r}: use one of {', '.join(FORMATS)}")
    needs = FORMATS[to][1]
    if needs and find_spec(needs) is None:
        raise ValueError(f"--to {to} needs {needs}: pip install 'yprov4ml[convert]'")
    if to == "provn":
        return doc.get_provn()
    if to in RDF_FORMATS:
        if to == "turtle" and doc.bundles:
            raise ValueError("Turtle cannot hold bundles: use trig or nquads")
        from .rdf import prov_dataset

        return prov_dataset(doc).serialize(format=to)
    return doc.serialize(format="xml")


def _format_for(source: Path, doc: ProvDocument, to: str, output: Path | None) -> str:
    """``to``, or for a document with bundles asked as Turtle, the named-graph form that holds them."""
    if to != "turtle" or not doc.bundles:
        return to
    if output is None:
        return "trig"
    if output.suffix in NAMED_GRAPH_SUFFIXES:
        return NAMED_GRAPH_SUFFIXES[output.suffix]
    raise NotARunError(f"{source} holds {len(doc.bundles)} bundle(s), which Turtle cannot hold: {output} would not "
                       f"load as Turtle; write TriG (--to trig -o {output.with_suffix('.trig')}) or N-Quads "
                       f"(--to nquads -o {output.with_suffix('.nq')})")


def convert(source: Path, to: str, output: Path | None = None) -> Path:
    """Write ``source`` (PROV-JSON) in format ``to``; returns the file written. Asked for Turtle, a document
    with bundles is written as TriG (``.trig``, or ``.nq`` N-Quads), or refused for a Turtle file name."""
    doc = read_prov_json(source)
    to = _format_for(source, doc, to, output)
    text = serialize(doc, to)
    target = output or source.with_name(source.name.removesuffix(".json").removesuffix(".prov") + FORMATS[to][0])
    atomic_write_text(target, text)
    return target
