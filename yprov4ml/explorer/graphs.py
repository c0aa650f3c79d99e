"""The explorer's pictures: a workflow whose tasks open into their runs and runs into their ranks, and a
run's own provenance graph; laid out by Graphviz into SVG that the page embeds (and pans and zooms).

Each node carries an ``id`` (``task:NAME``, ``run:ID``, ``rank:ID:N``, ``data:NAME``) that Graphviz writes
onto the SVG element, so the page finds the node's attributes by it.
"""

from __future__ import annotations

from typing import Any, Iterable

import pydot

STATUS_FILL = {"FINISHED": "#D8F0D8", "FAILED": "#F6C6C6", "INTERRUPTED": "#FBE0B0", "KILLED": "#FBE0B0",
               "RUNNING": "#CFE3FA"}


def _q(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def workflow_dot(name: str, status: str, tasks: list[dict[str, Any]], files: list[dict[str, Any]],
                 runs: dict[str, list[dict[str, Any]]], expanded: set[str]) -> str:
    """DOT of a workflow: task nodes (colour by status), data nodes, used/generated edges; a task in
    ``expanded`` becomes a cluster holding its runs, a run in ``expanded`` (``run:ID``) its ranks."""
    graph = pydot.Dot(graph_type="digraph", rankdir="LR", fontname="Helvetica", fontsize="12", labelloc="t",
                      label=_q(f"workflow {name} ({status})"), nodesep="0.2", ranksep="0.35", compound="true")
    for task in tasks:
        task_key = f"task:{task['task_id']}"
        fill = STATUS_FILL.get(task["status"], "#EEEEEE")
        node = pydot.Node(_q(task_key), id=_q(task_key), label=_q(f"{task['task_id']}\n{task['status']}"),
                          shape="box", style="filled,rounded", fillcolor=fill, fontname="Helvetica", fontsize="10")
        if task_key not in expanded:
            graph.add_node(node)
            continue
        cluster = pydot.Cluster(_q(f"c-{task_key}"), label=_q(f"task {task['task_id']}"), style="rounded",
                                color="#888888", fontname="Helvetica", fontsize="10")
        cluster.add_node(node)
        for run in runs.get(task["task_id"], []):
            _add_run(cluster, run, f"run:{run['run_id']}" in expanded)
            graph.add_edge(pydot.Edge(_q(task_key), _q(f"run:{run['run_id']}"), label=_q("started"),
                                      fontsize="8", color="#888888", style="dashed"))
        graph.add_subgraph(cluster)
    for item in files:
        data_key = f"data:{item['label']}"
        if not graph.get_node(_q(data_key)):
            graph.add_node(pydot.Node(_q(data_key), id=_q(data_key), label=_q(item["label"]), shape="ellipse",
                                      style="filled", fillcolor="#FFF7D6", fontname="Helvetica", fontsize="9"))
        task_key = _q(f"task:{item['task_id']}")
        edge = (_q(data_key), task_key) if item["role"] == "used" else (task_key, _q(data_key))
        graph.add_edge(pydot.Edge(*edge, fontsize="8", color="#555555", arrowsize="0.6"))
    return graph.to_string()


def _add_run(cluster: Any, run: dict[str, Any], open_ranks: bool) -> None:
    run_key = f"run:{run['run_id']}"
    fill = STATUS_FILL.get(run["status"], "#EEEEEE")
    if not open_ranks:
        cluster.add_node(pydot.Node(_q(run_key), id=_q(run_key), shape="box", style="filled", fillcolor=fill,
                                    label=_q(f"run {run['run_id']}\n{run['status']}, {len(run['ranks'])} rank(s)"),
                                    fontname="Helvetica", fontsize="9"))
        return
    ranks = pydot.Cluster(_q(f"c-{run_key}"), label=_q(f"run {run['run_id']}"), style="filled,rounded",
                          fillcolor="#F4F4FB", color="#9999BB", fontname="Helvetica", fontsize="9")
    ranks.add_node(pydot.Node(_q(run_key), id=_q(run_key), shape="box", style="filled", fillcolor=fill,
                              label=_q(f"run {run['run_id']}"), fontname="Helvetica", fontsize="9"))
    for rank in run["ranks"]:
        rank_key = f"rank:{run['run_id']}:{rank['rank']}"
        ranks.add_node(pydot.Node(_q(rank_key), id=_q(rank_key), shape="box", style="filled",
                                  fillcolor=STATUS_FILL.get(rank["status"], "#EEEEEE"), fontname="Helvetica",
                                  fontsize="8", label=_q(f"rank {rank['rank']} on {rank['host']}\n{rank['status']}")))
    cluster.add_subgraph(ranks)


def run_dot(documents: Iterable[dict[str, Any]], title: str) -> str:
    """DOT of a run: its ranks' records folded as ``yprov4ml graph`` draws them."""
    from ..prov.picture import run_picture

    return run_picture(list(documents)).to_dot(title)
