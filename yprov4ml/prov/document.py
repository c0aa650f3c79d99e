"""The PROV vocabulary of yprov4ml: namespaces, identifiers, literal values, and PROV-JSON text.

Every writer (rank documents, the collection, prov-merge, the bridge) builds
its identifiers and prefixes from here, and every reader (``prov.decode``)
relies on the same names.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from prov.model import PROV, XSD, Namespace, ProvDocument, QualifiedName

from ..storage.names import safe_part

VOCABULARY = "https://w3id.org/yprov4ml/ns#"
RUN_NAMESPACE = "https://w3id.org/yprov4ml/run/"
DEFAULT_USER_NAMESPACE = "https://w3id.org/yprov4ml/user/"


YPROV = Namespace("yprov", VOCABULARY)


def prov_kind(name: str) -> QualifiedName:
    """A ``prov:type`` value as a qualified name (``"prov:Person"``, ``"yprov:RunExecution"``), not a string.

    Written as ``{"$": "prov:Person", "type": "xsd:QName"}`` — the PROV-JSON
    submission's form (§3.1.2), which prov 3.x writes and reads; the legacy
    ``prov:QUALIFIED_NAME`` is still read — so PROV and RDF tools see the type
    itself (``a prov:Person``), not a text literal.
    """
    prefix, _, local = name.partition(":")
    namespaces = {"prov": PROV, "yprov": YPROV}
    if prefix not in namespaces or not local:
        raise ValueError(f"{name!r} is not a prov: or yprov: type")
    return namespaces[prefix][local]


def qname_json(name: str) -> dict[str, str]:
    """The PROV-JSON form of a qualified-name value, for writers that build the JSON directly."""
    prov_kind(name)  # the same names as the prov-model writers
    return {"$": name, "type": "xsd:QName"}


def absolute_namespace(namespace: str | None) -> str:
    """The user's namespace as an absolute IRI ending in '/' or '#' (``example.org`` → ``http://example.org/``)."""
    if not namespace:
        return DEFAULT_USER_NAMESPACE
    if "://" not in namespace and not namespace.startswith("urn:"):
        namespace = "http://" + namespace
    return namespace if namespace.endswith(("/", "#", ":")) else namespace + "/"


def timestamp(seconds: float) -> datetime:
    """A Unix time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def run_namespace(run_id: str) -> str:
    """The namespace IRI of a run's identifiers (``run:`` in its documents; another run's, by another prefix)."""
    return f"{RUN_NAMESPACE}{safe_part(run_id)}/"


def run_activity_id(rank: int) -> str:
    return f"run:rank-{rank}"


def context_activity_id(rank: int, context: str) -> str:
    return f"run:rank-{rank}/context/{context}"


def metric_entity_id(rank: int, context: str, name: str) -> str:
    """The id of a metric series; ``name`` is the one the run minted for its key (its file name)."""
    return f"run:rank-{rank}/metric/{context}/{name}"


def new_document(run_id: str, user_namespace: str) -> ProvDocument:
    """An empty document with every prefix bound to an absolute IRI."""
    doc = ProvDocument()
    doc.add_namespace("xsd", XSD.uri)
    doc.add_namespace("yprov", VOCABULARY)
    doc.add_namespace("run", run_namespace(run_id))
    doc.add_namespace("user", absolute_namespace(user_namespace))
    return doc


def to_json(doc: ProvDocument, indent: int | None = 2) -> str:
    """PROV-JSON text of ``doc`` with the ``xsd`` and ``prov`` prefixes declared explicitly.

    prov leaves the two standard prefixes implicit; declaring them lets any
    JSON reader resolve every QName to an absolute IRI.
    """
    # The JSON serializer module alone: doc.serialize() would import every format (rdflib too).
    from prov.serializers.provjson import encode_json_document

    data = encode_json_document(doc)
    declare_standard_prefixes(data)
    return json.dumps(data, indent=indent, ensure_ascii=False)


def declare_standard_prefixes(document: dict) -> None:
    """Add the ``xsd`` and ``prov`` prefixes to a PROV-JSON object and its bundles."""
    prefixes = document.setdefault("prefix", {})
    prefixes.setdefault("xsd", XSD.uri)
    prefixes.setdefault("prov", PROV.uri)
    for bundle in (document.get("bundle") or {}).values():
        declare_standard_prefixes(bundle)


def literal(value: Any) -> Any:
    """A PROV attribute value: scalars keep their type, anything else becomes JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
