"""The workflow task a run belongs to, handed down through the environment.

A workflow task (``yprov4wfs_bridge``) sets these variables while it runs; a
run started in the same process, or in a child process (``subprocess``,
``mpiexec``, ``srun``) inherits them, records its parent task, and registers
its documents in the workflow's ``runs.jsonl`` so the bridge can find them.
yprov4ml does not import the bridge: the environment is the whole contract.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

TASK_ID = "YPROV4WFS_TASK_ID"
WORKFLOW_ID = "YPROV4WFS_WORKFLOW_ID"
WORKFLOW_DIR = "YPROV4WFS_WORKFLOW_DIR"
EXECUTION_ID = "YPROV4WFS_EXECUTION_ID"  # one per execution: a re-run into the same directory gets a new one
REGISTRY = "runs.jsonl"


def parent_task(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``{"task_id", "workflow_id", "workflow_dir", "execution_id"}`` under a workflow task, else None."""
    env = os.environ if environ is None else environ
    task = env.get(TASK_ID)
    if not task:
        return None
    return {"task_id": task, "workflow_id": env.get(WORKFLOW_ID, ""), "workflow_dir": env.get(WORKFLOW_DIR, ""),
            "execution_id": env.get(EXECUTION_ID, "")}


def register(parent: dict[str, str], event: str, run_id: str, rank: int, run_dir: Path, prov_path: Path) -> None:
    """Append one line to the workflow's registry (one small O_APPEND write: safe from many ranks)."""
    directory = parent.get("workflow_dir")
    if not directory:
        return
    line = json.dumps({"event": event, "task_id": parent["task_id"], "execution_id": parent.get("execution_id", ""),
                       "run_id": run_id, "rank": rank, "run_dir": str(run_dir), "prov_path": str(prov_path)}) + "\n"
    fd = os.open(Path(directory) / REGISTRY, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
