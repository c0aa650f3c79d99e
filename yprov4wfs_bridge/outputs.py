"""Everything the bridge makes from a workflow directory: the multi-level bundle, the graph picture, the crate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yprov4ml.errors import DocumentError
from yprov4ml.publish.metadata import PublicationMetadata, load_metadata
from yprov4ml.storage.files import atomic_write_text, read_json

from .bundle import write_bundle
from .crate import CrateOptions, build_crate
from .errors import WorkflowError
from .graph import MultiLevelGraph, build_graph, multi_level_picture
from .journal import read_events, replay
from .matching import apply_claims
from .provwf import workflow_document
from .runs import Attachments, collect
from .ids import VALID_ID
from .layout import EVENTS, MANIFEST, WORKFLOW_PROV

BUNDLE = "bundle.prov.json"
GRAPH = "graph.dot"
CRATE = "crate"


@dataclass(repr=False)
class BuildResult:
    """What ``build`` wrote, the merged graph and the runs it nested, and what it found missing."""
    workflow_dir: Path
    bundle: Path
    graph: MultiLevelGraph
    picture: Path
    crate: Path | None
    attachments: Attachments
    gaps: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # A summary: the graph and the rank documents, printed whole, run to hundreds of kilobytes.
        documents = self.attachments.documents
        return (f"BuildResult(bundle={str(self.bundle)!r}, picture={str(self.picture)!r}, "
                f"crate={str(self.crate) if self.crate else None!r}, {len(documents)} rank document(s) of "
                f"{len({d.run_id for d in documents})} run(s), {len(self.gaps)} gap(s))")


def load_record(workflow_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The workflow's manifest, and what could not be read of it. A workflow recorded from a manager's
    events is replayed from its journal (and its manifest rewritten), so a killed manager loses nothing."""
    journal = workflow_dir / EVENTS
    if not journal.is_file():
        return load_manifest(workflow_dir), []
    events, problems = read_events(journal)
    state = replay(events)
    if state.manifest is None:
        raise WorkflowError(f"{journal} holds no workflow_started event: not a journal of a workflow execution")
    # Decided from the replayed jobs: a rebuild after a killed manager nests its runs as its own end would.
    apply_claims(workflow_dir, state)
    atomic_write_text(workflow_dir / MANIFEST, json.dumps(state.manifest, indent=1))
    return state.manifest, problems + state.problems


def load_manifest(workflow_dir: Path) -> dict:
    path = workflow_dir / MANIFEST
    if not path.is_file():
        raise WorkflowError(f"{workflow_dir} is not a workflow directory: no {MANIFEST} in it")
    try:
        manifest = read_json(path)
    except DocumentError as exc:
        raise WorkflowError(str(exc)) from None
    problem = manifest_problem(manifest)
    if problem:
        raise WorkflowError(f"{path}: not a workflow manifest ({problem})")
    return manifest


def manifest_problem(manifest: Any) -> str | None:
    """What makes ``manifest`` unusable as a workflow manifest, or None."""
    if not isinstance(manifest, dict):
        return "the top level is not an object"
    for key, kind in (("id", str), ("name", str), ("tasks", list), ("data", list), ("agents", list)):
        if not isinstance(manifest.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    for task in manifest["tasks"]:
        if not isinstance(task, dict) or not isinstance(task.get("id"), str) or not VALID_ID.match(task["id"]):
            return f"a task is malformed or has an unsafe id: {str(task)[:80]}"
        for key in ("inputs", "outputs", "agents", "attached"):
            if not isinstance(task.get(key, []), list) or not all(isinstance(v, str) for v in task.get(key, [])):
                return f"task {task['id']}: {key!r} must be a list of names"
    for item in manifest["data"] + manifest["agents"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return f"a data item or agent is malformed: {str(item)[:80]}"
    return None


def build(workflow_dir: str | Path, crate: bool = True, svg: bool = True,
          crate_options: CrateOptions | None = None, metadata: PublicationMetadata | str | Path | None = None,
          expand_metrics: bool = False) -> BuildResult:
    """Write ``bundle.prov.json``, ``graph.dot``/``.svg`` and ``crate/`` for a workflow directory.

    ``metadata`` (authors, license, publisher...) is a :class:`PublicationMetadata`, a metadata file, or
    None: then the nearest ``yprov4ml.toml`` / ``[tool.yprov4ml]`` above the workflow directory, and the
    ``YPROV4ML_*`` environment variables.

    What is missing (a task that never ended, a run without its document, a
    rank lost) is listed in ``gaps``, in the bundle and in the crate: never
    silently left out.
    """
    workflow_dir = Path(workflow_dir).absolute()
    manifest, gaps = load_record(workflow_dir)
    gaps += [f"task {t['id']} never ended (status {t['status']})" for t in manifest["tasks"]
             if t.get("start_time") and not t.get("end_time")]
    if manifest.get("start_time") and not manifest.get("end_time"):
        gaps.append("the workflow never ended")
    attachments = collect(workflow_dir, manifest)
    gaps += attachments.gaps
    workflow = workflow_document(manifest)
    atomic_write_text(workflow_dir / WORKFLOW_PROV, json.dumps(workflow, ensure_ascii=False))
    # Graphviz lays the picture out in its own process while the bundle is written.
    picture_done = multi_level_picture(workflow, attachments.documents, expand_metrics).start_writing(
        workflow_dir / GRAPH, svg)
    try:
        bundle = write_bundle(workflow_dir / BUNDLE, workflow, attachments.documents, gaps)
        graph = MultiLevelGraph(build_graph(workflow, attachments.documents))
        picture, crate_path = picture_done(), None  # the crate holds the diagram Graphviz drew meanwhile
        if crate:
            if not isinstance(metadata, PublicationMetadata):
                metadata = load_metadata(workflow_dir, file=metadata)
            crate_path = workflow_dir / CRATE
            build_crate(crate_path, workflow_dir, manifest, attachments.documents,
                        {"workflow-level PROV-JSON": workflow_dir / WORKFLOW_PROV,
                         "multi-level PROV-JSON bundle": bundle}, gaps, crate_options, metadata,
                        picture=picture if picture.suffix == ".svg" else None)
    except BaseException:
        picture_done()  # Graphviz is not left running
        raise
    return BuildResult(workflow_dir, bundle, graph, picture, crate_path, attachments, gaps)
