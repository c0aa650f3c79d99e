"""Finding the yprov4ml run documents of each task: the registry, attached paths, and the gaps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yprov4ml.errors import DocumentError
from yprov4ml.parent import REGISTRY
from yprov4ml.prov.decode import RankDocument, load_rank_document
from yprov4ml.storage.layout import rank_documents

from .errors import WorkflowError


@dataclass
class Attachments:
    documents: list[RankDocument] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)  # what is missing, said plainly; never silently dropped

    def of_task(self, task_id: str) -> list[RankDocument]:
        return [d for d in self.documents if d.task_id == task_id]


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


def collect(workflow_dir: Path, manifest: dict[str, Any]) -> Attachments:
    """Every rank document of every task: registered by the runs themselves, or attached by hand."""
    found = Attachments()
    seen: set[tuple[str, int]] = set()
    started: dict[tuple[str, int], dict[str, Any]] = {}
    registry = workflow_dir / REGISTRY
    paths: list[tuple[str, Path]] = []
    if registry.is_file():
        for line in registry.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                found.gaps.append(f"{registry}: a damaged line was skipped")
                continue
            if event.get("execution_id", "") != manifest.get("execution_id", ""):
                continue  # a run of an earlier execution written into the same directory
            key = (event["run_id"], event["rank"])
            if event["event"] == "start":
                started[key] = event
            elif event["event"] == "end":
                started.pop(key, None)
                paths.append((event["task_id"], Path(event["prov_path"])))
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
    for run_id in sorted({d.run_id for d in found.documents}):
        ranks = [d for d in found.documents if d.run_id == run_id]
        missing = sorted(set(range(max(d.world_size for d in ranks))) - {d.rank for d in ranks})
        # With collect_all_processes=False only rank 0 writes a document: the others are not missing.
        if missing and ranks[0].run.get("collect_all_processes"):
            found.gaps.append(f"task {ranks[0].task_id}: run {run_id} is missing the documents of ranks "
                              f"{missing} (of {max(d.world_size for d in ranks)})")
    found.documents.sort(key=lambda d: (d.task_id, d.run_id, d.rank))
    return found
