"""The ``yprov:`` vocabulary: the RDFS/OWL file shipped with the package, and which terms a document uses
that it does not define.

The file (``vocabulary.ttl``) is the one definition of every class and attribute yprov4ml writes; this
module reads only its subject lines, so checking a document needs neither rdflib nor a parse of the
whole ontology.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

from .document import VOCABULARY

_DEFINED = re.compile(r"^yprov:([A-Za-z_][A-Za-z0-9_]*) a (owl:Class|owl:DatatypeProperty|prov:SoftwareAgent) ;",
                      re.MULTILINE)


def vocabulary_text() -> str:
    """The vocabulary, as Turtle."""
    return resources.files(__package__).joinpath("vocabulary.ttl").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def defined_terms() -> dict[str, str]:
    """Every term the vocabulary defines → what it is (``owl:Class``, ``owl:DatatypeProperty``, ...)."""
    return {name: kind for name, kind in _DEFINED.findall(vocabulary_text())}


def used_terms(document: dict[str, Any]) -> set[str]:
    """The ``yprov:`` terms a PROV-JSON document uses: its types and its attribute names, bundles included."""
    found: set[str] = set()
    _collect(document, {}, found)
    return found


def undefined_terms(document: dict[str, Any]) -> list[str]:
    """The ``yprov:`` terms a PROV-JSON document uses that the vocabulary does not define, sorted."""
    return sorted(used_terms(document) - defined_terms().keys())


def _collect(document: dict[str, Any], prefixes: dict[str, str], found: set[str]) -> None:
    prefixes = {**prefixes, **(document.get("prefix") if isinstance(document.get("prefix"), dict) else {})}
    ours = {name for name, iri in prefixes.items() if iri == VOCABULARY}
    for kind, records in document.items():
        if not isinstance(records, dict) or kind == "prefix":
            continue
        if kind == "bundle":
            for bundle in records.values():
                if isinstance(bundle, dict):
                    _collect(bundle, prefixes, found)
            continue
        for record in records.values():
            for attributes in record if isinstance(record, list) else [record]:
                if isinstance(attributes, dict):
                    _collect_record(attributes, ours, found)


def _collect_record(attributes: dict[str, Any], ours: set[str], found: set[str]) -> None:
    for key, value in attributes.items():
        prefix, _, local = key.partition(":")
        if prefix in ours:
            found.add(local)
        if key == "prov:type":
            for kind in value if isinstance(value, list) else [value]:
                text = kind.get("$") if isinstance(kind, dict) else kind
                if isinstance(text, str):
                    prefix, _, local = text.partition(":")
                    if prefix in ours:
                        found.add(local)
