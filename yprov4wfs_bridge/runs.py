"""Finding the yprov4ml run documents of each task: the registry, attached paths, and the gaps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yprov4ml.errors import DocumentError
from yprov4ml.distributed.ranks import missing_ranks
from yprov4ml.parent import REGISTRY
from yprov4ml.prov.decode import RankDocument, document_files, load_rank_document
from yprov4ml.storage.layout import rank_documents, run_dir_of

from .errors import WorkflowError


@dataclass
class Attachments:
    documents: list[RankDocument] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)  # what is missing, said plainly; never silently dropped


def outside_locations(doc: RankDocument) -> list[str]:
    """The files of a document refused because they lie outside its run directory."""
    return [f"{kind} location {location!r} lies outside the run directory {run_dir_of(doc.path)}: refused"
            for kind, location, path in document_files(doc) if path is None]


def _rank_files(path: Path) -> list[Path]:
    return rank_documents(path) if path.is_dir() else [path]


def check_attachable(path: Path) -> Path:
    """A run directory or PROV-JSON file that yprov4ml can read; a clear error otherwise."""
    if not path.exists():
        raise WorkflowError(f"cannot attach {path}: it does not exist")
    files = _rank_files(path)
    if not files:
        raise WorkflowError(f"cannot attach {path}: no prov.rank*.json in it (not a yprov4ml run directory; "
                            "for an unfinished run, run `yprov4ml recover` first)")
    for file in files:
        try:
            load_rank_document(file)
        except DocumentError as exc:
            raise WorkflowError(f"cannot attach {file}: {exc}") from None
    return path.resolve()


_EVENT_FIELDS = {"event": str, "task_id": str, "run_id": str, "rank": int, "run_dir": str, "prov_path": str}


def _registry_event(line: str) -> dict[str, Any] | None:
    """One line of ``runs.jsonl``, or None when it is damaged or not an event of the expected shape."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or event.get("event") not in ("start", "end"):
        return None
    if not all(isinstance(event.get(k), kind) for k, kind in _EVENT_FIELDS.items()):
        return None
    return event


def collect(workflow_dir: Path, manifest: dict[str, Any]) -> Attachments:
    """Every rank document of every task: registered by the runs themselves, or attached by hand."""
    found = Attachments()
    claims = {(c.get("run_id"), c.get("rank")): c for c in manifest.get("claims", []) if isinstance(c, dict)}
    seen: set[tuple[str, int]] = set()
    started: dict[tuple[str, int], dict[str, Any]] = {}
    unplaced: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}  # registered without a task, matched to none
    ended: set[tuple[str, int]] = set()
    registry = workflow_dir / REGISTRY
    paths: list[tuple[str, Path]] = []
    if registry.is_file():
        for line in registry.read_text(encoding="utf-8").splitlines():
            event = _registry_event(line)
            if event is None:
                found.gaps.append(f"{registry}: a damaged line was skipped: {line[:80]!r}")
                continue
            if event.get("execution_id", "") != manifest.get("execution_id", ""):
                continue  # a run of an earlier execution written into the same directory
            key = (event["run_id"], event["rank"])
            if not event["task_id"]:  # registered under the workflow only: the job it ran in was told apart
                claim = claims.get(key)
                if claim is None or not claim.get("task"):
                    if event["event"] == "start":
                        why = claim.get("why") if claim else "no job was matched to it"
                        unplaced[key] = (f"run {key[0]} rank {key[1]} ran under the workflow, but in which task "
                                         f"is not known: {why}", event)
                    else:
                        ended.add(key)
                    continue
                event = {**event, "task_id": claim["task"]}
            if event["event"] == "start":
                started[key] = event
            elif event["event"] == "end":
                started.pop(key, None)
                paths.append((event["task_id"], Path(event["prov_path"])))
    for key, (gap, event) in unplaced.items():
        unrecovered = key not in ended and not Path(event["prov_path"]).is_file()
        found.gaps.append(gap + (f"; it never ended either: `yprov4ml recover {event['run_dir']}` writes its "
                                 "document" if unrecovered else ""))
    for key, event in started.items():  # a run that began under a task and never ended
        prov = Path(event["prov_path"])
        if prov.is_file():  # recovered afterwards
            paths.append((event["task_id"], prov))
        else:
            found.gaps.append(f"task {event['task_id']}: run {key[0]} rank {key[1]} never ended and has no document "
                              f"(run `yprov4ml recover {event['run_dir']}`)")
    for task in manifest["tasks"]:
        for attached in task.get("attached", []):
            paths += [(task["id"], f) for f in _rank_files(Path(attached))]
    for task_id, path in paths:
        if not path.is_file():
            found.gaps.append(f"task {task_id}: {path} is missing")
            continue
        try:
            doc = load_rank_document(path.resolve(), task_id)
        except DocumentError as exc:
            found.gaps.append(f"task {task_id}: {exc}")
            continue
        if (doc.run_id, doc.rank) in seen:
            continue
        seen.add((doc.run_id, doc.rank))
        found.documents.append(doc)
        found.gaps += [f"task {task_id}: run {doc.run_id} rank {doc.rank}: {problem}" for problem in
                       outside_locations(doc)]
    for run_id in sorted({d.run_id for d in found.documents}):
        ranks = [d for d in found.documents if d.run_id == run_id]
        world = max(d.world_size for d in ranks)
        count, first = missing_ranks(world, (d.rank for d in ranks))
        # With collect_all_processes=False only rank 0 writes a document: the others are not missing.
        if count and ranks[0].run.get("collect_all_processes"):
            listed = f"{first}" + (f" and {count - len(first)} more" if count > len(first) else "")
            found.gaps.append(f"task {ranks[0].task_id}: run {run_id} is missing the documents of ranks "
                              f"{listed} (of {world})")
    found.documents.sort(key=lambda d: (d.task_id, d.run_id, d.rank))
    return found
