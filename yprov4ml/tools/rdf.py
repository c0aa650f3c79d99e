"""PROV as RDF that plain SPARQL can query: each qualified relation also in its unqualified form.

prov's serializer writes a relation that has a time or attributes only in
PROV-O's qualified form (``?e prov:qualifiedGeneration [ prov:activity ?a;
prov:atTime ... ]``), so ``?e prov:wasGeneratedBy ?a`` finds none of them.
PROV-O allows, and its examples write, both forms side by side; we add the
binary triple beside every qualified node. prov's RDF reader would count such a
relation twice, so :func:`read_prov_rdf` drops the added triples before handing
the graph to prov.
"""

from __future__ import annotations

from typing import Any

PROV_NS = "http://www.w3.org/ns/prov#"
# PROV-O: qualified property → (the qualified node's influencer property, the unqualified property)
QUALIFIED = {
    "qualifiedGeneration": ("activity", "wasGeneratedBy"),
    "qualifiedUsage": ("entity", "used"),
    "qualifiedAssociation": ("agent", "wasAssociatedWith"),
    "qualifiedAttribution": ("agent", "wasAttributedTo"),
    "qualifiedDelegation": ("agent", "actedOnBehalfOf"),
    "qualifiedDerivation": ("entity", "wasDerivedFrom"),
    "qualifiedRevision": ("entity", "wasRevisionOf"),
    "qualifiedQuotation": ("entity", "wasQuotedFrom"),
    "qualifiedPrimarySource": ("entity", "hadPrimarySource"),
    "qualifiedCommunication": ("activity", "wasInformedBy"),
    "qualifiedStart": ("entity", "wasStartedBy"),
    "qualifiedEnd": ("entity", "wasEndedBy"),
    "qualifiedInvalidation": ("activity", "wasInvalidatedBy"),
    "qualifiedInfluence": ("influencer", "wasInfluencedBy"),
}


def _shortcuts(dataset: Any) -> list[tuple[Any, Any, Any, Any]]:
    """(subject, unqualified property, influencer, graph) for every qualified node of every graph."""
    from rdflib import URIRef

    found = []
    for qualified, (influencer, plain) in QUALIFIED.items():
        for subject, _, node, graph in dataset.quads((None, URIRef(PROV_NS + qualified), None, None)):
            for _, _, target, _ in dataset.quads((node, URIRef(PROV_NS + influencer), None, graph)):
                found.append((subject, URIRef(PROV_NS + plain), target, dataset.graph(graph)))
    return found


def with_unqualified_relations(dataset: Any) -> Any:
    """``dataset`` (prov's encoding, an rdflib Dataset) with the binary triple beside each qualified node."""
    dataset.addN(_shortcuts(dataset))
    return dataset


def prov_dataset(document: Any) -> Any:
    """A prov document as an rdflib Dataset: one named graph a bundle, both forms of every relation."""
    from prov.serializers.provrdf import ProvRDFSerializer

    return with_unqualified_relations(ProvRDFSerializer(document).encode_document(document))


def read_prov_rdf(text: str, rdf_format: str) -> Any:
    """A prov document from RDF that :func:`prov_dataset` wrote (or any PROV-O): the unqualified
    triple that repeats a qualified node is dropped first, so each relation is read once."""
    from prov.model import ProvDocument
    from prov.serializers.provrdf import ProvRDFSerializer
    from rdflib import Dataset

    dataset = Dataset(default_union=True)
    dataset.parse(data=text, format=rdf_format)
    for quad in _shortcuts(dataset):
        dataset.remove(quad)
    document = ProvDocument()
    ProvRDFSerializer(document).decode_document(dataset, document)  # the parsed graph itself: no re-encoding
    return document
