"""One networkx graph of both levels: the workflow, its tasks, and every rank document of every run.

Nodes are PROV records keyed by their full IRI, with attributes ``level``
(workflow / task / run / rank), ``prov_type``, ``label`` and, for run-level
records, ``run_id`` and ``rank``. Edges carry ``relation``: a PROV relation
(pointing from effect to cause, as PROV does: data → task for
wasGeneratedBy), or one of the nesting edges ``hadRun`` (task → run) and
``hadRank`` (run → the rank's run activity).
"""

from __future__ import annotations

from typing import Any, Iterable

import networkx as nx

from yprov4ml.prov.decode import RankDocument, prov_type
from yprov4ml.prov.picture import ELEMENTS, Picture, iri, prefixes_of, relations

NESTING = ("hadRun", "hadRank")


def _plain(value: Any) -> Any:
    return value["$"] if isinstance(value, dict) and "$" in value else value


def add_document(graph: nx.MultiDiGraph, document: dict[str, Any], level: str, **extra: Any) -> dict[str, str]:
    """Add a PROV-JSON object's records; returns its QName → IRI map of declared elements."""
    prefixes = prefixes_of(document)
    declared: dict[str, str] = {}
    for kind in ELEMENTS:
        for qname, attrs in document.get(kind, {}).items():
            node = iri(qname, prefixes)
            declared[qname] = node
            graph.add_node(node, qname=qname, record=kind, level=level, prov_type=prov_type(attrs),
                           label=str(_plain(attrs.get("prov:label", qname))), **extra)
    for source, target, relation in relations(document):
        u, v = iri(source, prefixes), iri(target, prefixes)
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


def multi_level_picture(workflow: dict[str, Any], documents: Iterable[RankDocument],
                        expand_metrics: bool = False) -> Picture:
    """Workflow → task → run → rank, as nested clusters; a rank's detail folded (see yprov4ml.prov.picture)."""
    picture = Picture()
    activities = workflow.get("activity", {})
    top_attrs = next((a for a in activities.values() if prov_type(a) == "yprov:WorkflowExecution"), {})
    name = str(_plain(top_attrs.get("prov:label", "workflow")))
    top = picture.cluster(("workflow",), f"workflow {name}", "workflow", _plain(top_attrs.get("yprov:status")))
    tasks = {qname.removeprefix("wf:task/"): qname for qname, attrs in activities.items()
             if prov_type(attrs) == "yprov:Task"}
    clusters = {task_id: picture.cluster(top + (f"task:{task_id}",), f"task {task_id}", "task",
                                         _plain(activities[qname].get("yprov:status")))
                for task_id, qname in tasks.items()}
    picture.add_document(workflow, top, placed={qname: clusters[task_id] for task_id, qname in tasks.items()})
    for doc in documents:
        where = clusters.get(doc.task_id)
        if where is None:
            raise KeyError(f"a run is attached to task {doc.task_id!r}, which the workflow does not have")
        run = picture.cluster(where + (f"run:{doc.run_id}",), f"run {doc.run_id}", "run", doc.status)
        picture.add_document(doc.data, picture.cluster(run + (f"rank:{doc.rank}",), f"rank {doc.rank}", "rank"),
                             expand_metrics)
    return picture
