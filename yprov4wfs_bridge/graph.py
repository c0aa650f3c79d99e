"""One networkx graph of both levels: the workflow, its tasks, and every rank document of every run.

Nodes are PROV records keyed by their full IRI, with attributes ``level``
(workflow / task / run / rank), ``prov_type``, ``label`` and, for run-level
records, ``run_id`` and ``rank``. Edges carry ``relation``: a PROV relation
(pointing from effect to cause, as PROV does: data → task for
wasGeneratedBy), or one of the nesting edges ``hadRun`` (task → run) and
``hadRank`` (run → the rank's run activity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import networkx as nx

from yprov4ml.prov.decode import RankDocument
from yprov4ml.prov.render import write_svg
from yprov4ml.storage.files import atomic_write_text

ELEMENTS = ("entity", "activity", "agent")
# The two participants an edge joins, per PROV relation: (from, to).
RELATIONS = {
    "used": ("prov:activity", "prov:entity"),
    "wasGeneratedBy": ("prov:entity", "prov:activity"),
    "wasInformedBy": ("prov:informed", "prov:informant"),
    "wasStartedBy": ("prov:activity", "prov:trigger"),
    "wasEndedBy": ("prov:activity", "prov:trigger"),
    "wasInvalidatedBy": ("prov:entity", "prov:activity"),
    "wasDerivedFrom": ("prov:generatedEntity", "prov:usedEntity"),
    "wasAttributedTo": ("prov:entity", "prov:agent"),
    "wasAssociatedWith": ("prov:activity", "prov:agent"),
    "actedOnBehalfOf": ("prov:delegate", "prov:responsible"),
    "wasInfluencedBy": ("prov:influencee", "prov:influencer"),
    "specializationOf": ("prov:specificEntity", "prov:generalEntity"),
    "alternateOf": ("prov:alternate1", "prov:alternate2"),
    "hadMember": ("prov:collection", "prov:entity"),
}
NESTING = ("hadRun", "hadRank")


def _iri(qname: str, prefixes: dict[str, str]) -> str:
    prefix, _, local = qname.partition(":")
    return prefixes[prefix] + local if prefix in prefixes and local else qname


def _plain(value: Any) -> Any:
    return value["$"] if isinstance(value, dict) and "$" in value else value


def add_document(graph: nx.MultiDiGraph, document: dict[str, Any], level: str, **extra: Any) -> dict[str, str]:
    """Add a PROV-JSON object's records; returns its QName → IRI map of declared elements."""
    prefixes = {k: v for k, v in document.get("prefix", {}).items()}
    prefixes.setdefault("prov", "http://www.w3.org/ns/prov#")
    declared: dict[str, str] = {}
    for kind in ELEMENTS:
        for qname, attrs in document.get(kind, {}).items():
            node = _iri(qname, prefixes)
            declared[qname] = node
            graph.add_node(node, qname=qname, record=kind, level=level, prov_type=_plain(attrs.get("prov:type", "")),
                           label=str(_plain(attrs.get("prov:label", qname))), **extra)
    for relation, (source_role, target_role) in RELATIONS.items():
        for attrs in document.get(relation, {}).values():
            source, target = attrs.get(source_role), attrs.get(target_role)
            if source and target:
                u, v = _iri(source, prefixes), _iri(target, prefixes)
                for node, qname in ((u, source), (v, target)):
                    if node not in graph:  # referenced here, declared elsewhere (another level, another rank)
                        graph.add_node(node, qname=qname, record="reference", level=level, prov_type="",
                                       label=qname, **extra)
                graph.add_edge(u, v, relation=relation)
    return declared


def run_node(run_id: str) -> str:
    return f"urn:yprov4ml:run:{run_id}"


def build_graph(workflow: dict[str, Any], documents: Iterable[RankDocument]) -> nx.MultiDiGraph:
    """The multi-level graph of a workflow-level document and its tasks' rank documents."""
    graph = nx.MultiDiGraph()
    declared = add_document(graph, workflow, level="task")
    for qname, node in declared.items():
        if graph.nodes[node]["prov_type"] == "yprov:WorkflowExecution":
            graph.nodes[node]["level"] = "workflow"
    for doc in documents:
        task = declared.get(f"wf:task/{doc.task_id}")
        if task is None:
            raise KeyError(f"a run is attached to task {doc.task_id!r}, which the workflow does not have")
        run = run_node(doc.run_id)
        if run not in graph:
            graph.add_node(run, qname=doc.run_id, record="run", level="run", prov_type="yprov:Run",
                           label=f"run {doc.run_id}", run_id=doc.run_id)
            graph.add_edge(task, run, relation="hadRun")
        rank_nodes = add_document(graph, doc.data, level="rank", run_id=doc.run_id, rank=doc.rank)
        activity = rank_nodes.get(f"run:rank-{doc.rank}")
        if activity is not None:
            graph.add_edge(run, activity, relation="hadRank")
    return graph


class MultiLevelGraph:
    """Queries on the merged graph: the runs of a task, the metrics of a task, the lineage of a data item."""

    def __init__(self, graph: nx.MultiDiGraph):
        self.graph = graph

    def node_of(self, qname: str) -> str:
        matches = [n for n, a in self.graph.nodes(data=True) if a.get("qname") == qname and a["level"] != "rank"]
        if not matches:
            raise KeyError(f"no workflow-level record {qname!r} in the graph")
        return matches[0]

    def runs_of(self, task_id: str) -> list[str]:
        """Run ids of the runs the task ran."""
        task = self.node_of(f"wf:task/{task_id}")
        return sorted(self.graph.nodes[v]["run_id"] for _, v, r in self.graph.out_edges(task, data="relation")
                      if r == "hadRun")

    def ranks_of(self, run_id: str) -> list[int]:
        return sorted(self.graph.nodes[v]["rank"] for _, v, r in self.graph.out_edges(run_node(run_id),
                                                                                     data="relation")
                      if r == "hadRank")

    def metrics_of(self, task_id: str) -> list[dict[str, Any]]:
        """Metric series of every rank of every run of the task: ``{node, label, run_id, rank}``."""
        runs = set(self.runs_of(task_id))
        return sorted(({"node": n, "label": a["label"], "run_id": a["run_id"], "rank": a["rank"]}
                       for n, a in self.graph.nodes(data=True)
                       if a.get("prov_type") == "yprov:MetricSeries" and a.get("run_id") in runs),
                      key=lambda m: (m["run_id"], m["rank"], m["label"]))

    def path(self, source: str, target: str) -> list[str]:
        """A path between two nodes, whatever the edge directions (e.g. task → a metric of its run)."""
        return nx.shortest_path(self.graph.to_undirected(as_view=True), source, target)

    def lineage(self, data_id: str) -> list[str]:
        """Everything a data item derives from, following PROV edges (tasks, data, runs' inputs...)."""
        node = self.node_of(f"wf:data/{data_id}")
        prov_only = nx.subgraph_view(self.graph, filter_edge=lambda u, v, k: self.graph.edges[u, v, k]["relation"]
                                     not in NESTING and self.graph.edges[u, v, k]["relation"] != "wasAssociatedWith")
        return sorted(self.graph.nodes[n]["qname"] for n in nx.descendants(prov_only, node))


LEVEL_STYLE = {"workflow": ("#9FB1FC", "box"), "task": ("#FFFC87", "ellipse"), "run": ("#FFCC99", "hexagon"),
               "rank": ("#E6E6E6", "ellipse")}


def write_picture(graph: nx.MultiDiGraph, dot_path: Path, svg: bool = True) -> Path:
    """DOT (and SVG with Graphviz) of the multi-level graph, colored by level; returns the SVG path when one was
    made, else the DOT path."""
    import pydot


    picture = pydot.Dot(graph_type="digraph", rankdir="BT", fontsize="10")
    names = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    for node, attrs in graph.nodes(data=True):
        color, shape = LEVEL_STYLE.get(attrs["level"], ("white", "ellipse"))
        if attrs.get("record") == "activity":
            shape = "box"
        picture.add_node(pydot.Node(names[node], label=f'"{attrs["label"]}\\n[{attrs["level"]}]"', shape=shape,
                                    style="filled", fillcolor=color, fontsize="9"))
    for u, v, relation in graph.edges(data="relation"):
        picture.add_edge(pydot.Edge(names[u], names[v], label=relation, fontsize="7",
                                    style="bold" if relation in NESTING else "solid"))
    atomic_write_text(dot_path, picture.to_string())
    made = write_svg(dot_path, dot_path.with_suffix(".svg")) if svg else None
    return made or dot_path
