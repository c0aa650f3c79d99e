"""Everything the bridge makes from a workflow directory: the multi-level bundle, the graph picture, the crate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import write_bundle
from .crate import CrateOptions, build_crate
from .graph import MultiLevelGraph, build_graph, write_picture
from .provwf import workflow_document
from .runs import Attachments, collect
from .errors import WorkflowError
from .workflow import MANIFEST, WORKFLOW_PROV

BUNDLE = "bundle.prov.json"
GRAPH = "graph.dot"
CRATE = "crate"


@dataclass
class BuildResult:
    workflow_dir: Path
    bundle: Path
    graph: MultiLevelGraph
    picture: Path
    crate: Path | None
    attachments: Attachments
    gaps: list[str] = field(default_factory=list)


def load_manifest(workflow_dir: Path) -> dict:
    path = workflow_dir / MANIFEST
    if not path.is_file():
        raise WorkflowError(f"{workflow_dir} is not a workflow directory: no {MANIFEST} in it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise WorkflowError(f"{path}: not readable JSON ({exc})") from None


def build(workflow_dir: str | Path, crate: bool = True, svg: bool = True,
          crate_options: CrateOptions | None = None) -> BuildResult:
    """Write ``bundle.prov.json``, ``graph.dot``/``.svg`` and ``crate/`` for a workflow directory.

    What is missing (a task that never ended, a run without its document, a
    rank lost) is listed in ``gaps``, in the bundle and in the crate: never
    silently left out.
    """
    workflow_dir = Path(workflow_dir).absolute()
    manifest = load_manifest(workflow_dir)
    gaps = [f"task {t['id']} never ended (status {t['status']})" for t in manifest["tasks"]
            if t.get("start_time") and not t.get("end_time")]
    if manifest.get("start_time") and not manifest.get("end_time"):
        gaps.append("the workflow never ended")
    attachments = collect(workflow_dir, manifest)
    gaps += attachments.gaps
    workflow = workflow_document(manifest)
    (workflow_dir / WORKFLOW_PROV).write_text(json.dumps(workflow, indent=2))
    bundle = write_bundle(workflow_dir / BUNDLE, workflow, attachments.documents, gaps)
    graph = MultiLevelGraph(build_graph(workflow, attachments.documents))
    picture = write_picture(graph.graph, workflow_dir / GRAPH, svg=svg)
    crate_path = None
    if crate:
        crate_path = workflow_dir / CRATE
        build_crate(crate_path, workflow_dir, manifest, attachments.documents,
                    {"workflow-level PROV-JSON": workflow_dir / WORKFLOW_PROV,
                     "multi-level PROV-JSON bundle": bundle}, gaps, crate_options)
    return BuildResult(workflow_dir, bundle, graph, picture, crate_path, attachments, gaps)
