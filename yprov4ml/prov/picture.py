"""Pictures people can read: PROV records drawn in nested clusters, with the detail folded.

A run is a cluster holding one cluster per rank; in the bridge's picture,
runs sit inside their task's cluster, inside the workflow's. Inside a rank,
parameters are folded into the label of the activity that used them, a
context's metric series into one node that lists them (``expand_metrics``
draws one node per series), a model's versions into one node, and the
source, environment and RNG states into one. Colours and shapes follow the
PROV convention: entities yellow ellipses, activities blue boxes, agents
orange houses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..storage.files import atomic_write_text
from .decode import attributes, decode, prov_type

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
ELEMENTS = ("entity", "activity", "agent")
STYLE = {"entity": {"shape": "ellipse", "fillcolor": "#FFFC87", "color": "#808080"},
         "activity": {"shape": "box", "fillcolor": "#9FB1FC", "color": "#0000FF"},
         "agent": {"shape": "house", "fillcolor": "#FED37F", "color": "#808080"}}
CLUSTER_COLOURS = {"workflow": "#F4F6FF", "task": "#FFFBE6", "run": "#FFF0E0", "rank": "#FFFFFF",
                   "failed": "#F6C6C6", "interrupted": "#FBE0B0"}
# a failed or interrupted workflow, task or run reads so at a glance: its colour, its border, its label
TROUBLE = {"FAILED": ("failed", "solid", "#B00000"), "INTERRUPTED": ("interrupted", "dashed", "#C07000"),
           "KILLED": ("interrupted", "dashed", "#C07000")}
SUPPORT = {"yprov:SourceCode": "source", "yprov:Environment": "environment", "yprov:RandomState": "RNG states"}
MAX_LINES = 6  # of folded items in one label; the rest is counted


def iri(qname: str, prefixes: dict[str, str]) -> str:
    """The full IRI of a QName (unchanged when its prefix is unknown)."""
    prefix, _, local = str(qname).partition(":")
    return prefixes[prefix] + local if prefix in prefixes and local else str(qname)


def prefixes_of(document: dict[str, Any]) -> dict[str, str]:
    found = {k: v for k, v in (document.get("prefix") or {}).items() if isinstance(v, str)}
    found.setdefault("prov", "http://www.w3.org/ns/prov#")
    return found


def relations(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(from, to, relation) of every relation of a PROV-JSON object, as QNames."""
    out = []
    for relation, (source_role, target_role) in RELATIONS.items():
        for attrs in (document.get(relation) or {}).values():
            if isinstance(attrs, dict) and isinstance(attrs.get(source_role), str) \
                    and isinstance(attrs.get(target_role), str):
                out.append((attrs[source_role], attrs[target_role], relation))
    return out


def _folded(node: "Node") -> str:
    if node.inline:
        return f"{node.label}: {', '.join(node.items)}" if node.items else node.label
    items = node.items
    shown = items[:MAX_LINES] + ([f"… {len(items) - MAX_LINES} more"] if len(items) > MAX_LINES else [])
    return "\n".join([node.label, *shown]) if shown else node.label


@dataclass
class Node:
    label: str
    kind: str  # entity, activity, agent
    cluster: tuple[str, ...]
    items: list[str] = field(default_factory=list)  # folded records, listed under the label
    inline: bool = False  # items on the label's line (a model's versions)


@dataclass
class Picture:
    """Nodes in nested clusters, and edges between them; written as DOT."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    clusters: dict[tuple[str, ...], tuple[str, str]] = field(default_factory=dict)  # path → (label, level)
    # Indexes, so that a picture of thousands of ranks is not quadratic: the edges at each node, and the
    # activities associated with each agent.
    _touching: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    _associated: dict[str, set[str]] = field(default_factory=dict)

    def cluster(self, path: tuple[str, ...], label: str, level: str, status: str | None = None) -> tuple[str, ...]:
        """A cluster; one whose ``status`` is FAILED, INTERRUPTED or KILLED is drawn as such."""
        if status in TROUBLE:
            label, level = f"{label} — {status}", f"{level}:{status}"
        self.clusters.setdefault(path, (label, level))
        return path

    def node(self, key: str, label: str, kind: str, cluster: tuple[str, ...] = ()) -> str:
        self.nodes.setdefault(key, Node(label, kind, cluster))
        return key

    def add_document(self, document: dict[str, Any], cluster: tuple[str, ...] = (),
                     expand_metrics: bool = False, placed: dict[str, tuple[str, ...]] | None = None
                     ) -> dict[str, str]:
        """Add a PROV-JSON object's records, folded, in ``cluster`` (agents outside every cluster; ``placed``
        puts given QNames in clusters of their own); returns its QName → node key map."""
        prefixes = prefixes_of(document)
        folded: dict[str, str] = {}  # QName → node key
        links = relations(document)
        users: dict[str, str] = {}  # entity → the activity it is folded into
        for source, target, relation in links:
            if relation == "used":
                users.setdefault(target, source)
            elif relation == "wasGeneratedBy":
                users.setdefault(source, target)  # a metric series belongs to the activity that made it
        for kind in ("activity", "agent", "entity"):  # activities first: parameters fold into their labels
            for qname, element in (document.get(kind) or {}).items():
                if not isinstance(element, dict):
                    continue
                kind_of, attrs = prov_type(element), attributes(element)
                label = str(attrs.get("prov:label") or qname)
                key = iri(qname, prefixes)
                owner = users.get(qname)
                if kind_of == "yprov:Parameter" and owner and iri(owner, prefixes) in self.nodes:
                    folded[qname] = iri(owner, prefixes)  # folded into the activity that used it
                    self.nodes[folded[qname]].items.append(f"{attrs.get('key', label)} = {attrs.get('value')}")
                    continue
                if kind_of == "yprov:MetricSeries" and owner and not expand_metrics:
                    group = f"{iri(owner, prefixes)}#metrics"
                    self.node(group, "metrics", "entity", cluster)
                    self.nodes[group].items.append(f"{attrs.get('key', label)} ({attrs.get('count', '?')} pts)")
                    folded[qname] = group
                    continue
                if kind_of == "yprov:ModelVersion" and attrs.get("model_name"):
                    group = f"{iri(owner or qname, prefixes)}#model-{attrs['model_name']}"
                    self.node(group, f"model {attrs['model_name']}", "entity", cluster)
                    self.nodes[group].inline = True
                    self.nodes[group].items.append(f"v{attrs.get('version', '?')}")
                    folded[qname] = group
                    continue
                if kind_of in SUPPORT and owner:
                    group = f"{iri(owner, prefixes)}#support"
                    self.node(group, "execution context", "entity", cluster)
                    self.nodes[group].items.append(SUPPORT[kind_of])
                    folded[qname] = group
                    continue
                if kind_of == "yprov:RunExecution":
                    label = f"execution, rank {decode(attrs.get('rank', 0))}"
                elif kind_of == "yprov:MetricSeries":
                    label = f"{attrs.get('key', label)} ({attrs.get('context', '')}, {attrs.get('count', '?')} pts)"
                where = () if kind == "agent" else (placed or {}).get(qname, cluster)
                folded[qname] = self.node(key, label, kind, where)
        self._fold_software_agents(document, links, folded, prefixes)
        for source, target, relation in links:
            self.edge(folded.get(source, iri(source, prefixes)), folded.get(target, iri(target, prefixes)), relation)
        return folded

    def _fold_software_agents(self, document: dict[str, Any], links: list[tuple[str, str, str]],
                              folded: dict[str, str], prefixes: dict[str, str]) -> None:
        """A software agent acting on behalf of a person (yprov4ml for the user) joins the person's node."""
        for delegate, responsible, relation in links:
            agent = (document.get("agent") or {}).get(delegate)
            if relation == "actedOnBehalfOf" and isinstance(agent, dict) and prov_type(agent) == "prov:SoftwareAgent":
                person = folded.get(responsible, iri(responsible, prefixes))
                software = folded.get(delegate)
                if person in self.nodes and software in self.nodes and software != person:
                    del self.nodes[software]
                    self.edges -= self._touching.pop(software, set())
                    self._associated.pop(software, None)
                    label = str(attributes(agent).get("prov:label") or delegate)
                    if f"via {label}" not in self.nodes[person].items:
                        self.nodes[person].items.append(f"via {label}")
                folded[delegate] = person

    def edge(self, source: str, target: str, relation: str) -> None:
        """An edge, unless the clusters already say it: an activity informed by the activity whose cluster
        holds it, or associated with an agent its enclosing activity is already associated with."""
        if source == target or source not in self.nodes or target not in self.nodes:
            return
        if relation == "wasInformedBy" and self._encloses(target, source):
            return
        if relation == "wasAssociatedWith":
            associated = self._associated.setdefault(target, set())  # per agent: no walk over every edge
            if any(self._encloses(s, source) for s in associated):
                return
            associated.add(source)
        edge = (source, target, relation)
        self.edges.add(edge)
        self._touching.setdefault(source, set()).add(edge)
        self._touching.setdefault(target, set()).add(edge)

    def _encloses(self, outer: str, inner: str) -> bool:
        """``outer`` sits in a cluster that contains ``inner``'s cluster, strictly deeper."""
        a, b = self.nodes[outer].cluster, self.nodes[inner].cluster
        return len(a) < len(b) and b[:len(a)] == a

    def to_dot(self, title: str = "") -> str:
        """DOT source: one subgraph cluster per cluster path, nested."""
        import pydot

        graph = pydot.Dot(graph_type="digraph", rankdir="LR", fontname="Helvetica", fontsize="12", label=title,
                          labelloc="t", nodesep="0.15", ranksep="0.3", newrank="true", compound="true")
        names = {key: f"n{i}" for i, key in enumerate(self.nodes)}
        subgraphs: dict[tuple[str, ...], Any] = {(): graph}

        def holder(path: tuple[str, ...]) -> Any:
            if path not in subgraphs:
                parent = holder(path[:-1])
                label, level = self.clusters.get(path, (path[-1], "rank"))
                kind, _, status = level.partition(":")
                colour, line, border = TROUBLE.get(status, (kind, "", "#999999"))
                if kind == "workflow":  # the whole picture in red would hide which task failed: border only
                    colour = kind
                sub = pydot.Cluster(f"c{len(subgraphs)}", label=_quote(label), style=f"filled,rounded{',' + line if line else ''}",
                                    fillcolor=CLUSTER_COLOURS.get(colour, "#FFFFFF"), color=border,
                                    penwidth="2" if line else "1", fontname="Helvetica", fontsize="11")
                parent.add_subgraph(sub)
                subgraphs[path] = sub
            return subgraphs[path]

        for path in sorted(self.clusters, key=len):
            holder(path)
        for key, node in self.nodes.items():
            style = dict(STYLE.get(node.kind, STYLE["entity"]))
            if node.items and not node.inline and node.kind == "entity":  # a list reads better in a box
                style["shape"] = "box"
            holder(node.cluster).add_node(pydot.Node(names[key], label=_quote(_folded(node)),
                                                     style="filled,rounded" if style["shape"] == "box" and
                                                     node.kind == "entity" else "filled", fontname="Helvetica",
                                                     fontsize="10", margin="0.08,0.03", **style))
        for source, target, relation in sorted(self.edges):
            graph.add_edge(pydot.Edge(names[source], names[target], label=_quote(relation), fontsize="8",
                                      fontname="Helvetica", color="#555555", arrowsize="0.6"))
        return graph.to_string()

    def write(self, dot_path: Path, svg: bool = True, title: str = "") -> Path:
        """Write the DOT file (and the SVG, with Graphviz); returns the SVG path when one was made, else the DOT."""
        return self.start_writing(dot_path, svg, title)()

    def start_writing(self, dot_path: Path, svg: bool = True, title: str = "") -> Callable[[], Path]:
        """Write the DOT file now and start Graphviz on it in its own process; the returned function waits
        for the SVG and gives what ``write`` gives. Lets a caller do other work while Graphviz lays out."""
        from .render import PendingSvg

        atomic_write_text(dot_path, self.to_dot(title))
        if not svg:
            return lambda: dot_path
        pending = PendingSvg(dot_path, dot_path.with_suffix(".svg"))
        return lambda: pending.wait() or dot_path


def _quote(text: str) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l")
    return f'"{escaped}\\l"' if "\\l" in escaped else f'"{escaped}"'


def run_picture(documents: list[dict[str, Any]], expand_metrics: bool = False) -> Picture:
    """The picture of one run: a cluster for the run, one inside it per rank document."""
    picture = Picture()
    for document in documents:
        run = next(((q, attributes(a)) for q, a in (document.get("activity") or {}).items()
                    if isinstance(a, dict) and prov_type(a) == "yprov:RunExecution"), None)
        run_id = str(run[1].get("run_id", "run")) if run else "run"
        rank = decode(run[1].get("rank", 0)) if run else 0
        status = str(run[1].get("status", "")) if run else None
        cluster = picture.cluster((f"run:{run_id}",), f"run {run_id}", "run", status)
        cluster = picture.cluster(cluster + (f"rank:{rank}",), f"rank {rank}", "rank")
        picture.add_document(document, cluster, expand_metrics)
    return picture
