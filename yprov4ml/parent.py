"""The workflow task a run belongs to, handed down through the environment.

A workflow task (``yprov4wfs_bridge``) sets these variables while it runs; a
run started in the same process, or in a child process (``subprocess``,
``mpiexec``, ``srun``) inherits them, records its parent task, and registers
its documents in the workflow's ``runs.jsonl`` so the bridge can find them.
yprov4ml does not import the bridge: the environment is the whole contract.

A workflow manager that cannot give each job its own environment (Snakemake
runs its jobs as children of one process) sets only the workflow's
variables: a run then registers with no task, and with clues — its Slurm job,
its host, its own and its parents' command lines — from which the bridge
tells which job ran it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

from .storage.files import append_line

TASK_ID = "YPROV4WFS_TASK_ID"
WORKFLOW_ID = "YPROV4WFS_WORKFLOW_ID"
WORKFLOW_DIR = "YPROV4WFS_WORKFLOW_DIR"
EXECUTION_ID = "YPROV4WFS_EXECUTION_ID"  # one per execution: a re-run into the same directory gets a new one
REGISTRY = "runs.jsonl"
MAX_PARENTS = 8  # enough for python ← mpiexec ← bash ← srun ← slurmstepd ← ... ← the manager
MAX_ARGS, MAX_ARG_CHARS = 64, 1024  # a registry line stays small: one write, whole


_IN_TASK: ContextVar[Mapping[str, str] | None] = ContextVar("yprov4wfs_task", default=None)


@contextmanager
def in_task(identity: Mapping[str, str]) -> Iterator[None]:
    """Runs started in this thread (or task) belong to ``identity``'s task, whatever the process environment
    says: several tasks may run at once in threads of one process (a thread pool executor)."""
    token = _IN_TASK.set(dict(identity))
    try:
        yield
    finally:
        _IN_TASK.reset(token)


def parent_task(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``{"task_id", "workflow_id", "workflow_dir", "execution_id"}`` under a workflow task (``task_id`` empty
    under a workflow whose manager could not say which task), else None."""
    env = (_IN_TASK.get() or os.environ) if environ is None else environ
    task, directory = env.get(TASK_ID, ""), env.get(WORKFLOW_DIR, "")
    if not task and not directory:
        return None
    return {"task_id": task, "workflow_id": env.get(WORKFLOW_ID, ""), "workflow_dir": directory,
            "execution_id": env.get(EXECUTION_ID, "")}


def process_clues(max_parents: int = MAX_PARENTS) -> dict[str, Any]:
    """What tells which job of a workflow this process belongs to: host, Slurm job, command lines."""
    commands = []
    try:
        import psutil

        process: Any = psutil.Process()
        for _ in range(max_parents + 1):
            if process is None:
                break
            try:
                commands.append([arg[:MAX_ARG_CHARS] for arg in process.cmdline()[:MAX_ARGS]])
                process = process.parent()
            except (psutil.Error, OSError):
                break
    except ImportError:  # psutil is a dependency; a broken install still registers what it can
        pass
    clues: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "commands": commands}
    for variable in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "PBS_JOBID", "LSB_JOBID"):
        if os.environ.get(variable):
            clues[variable.lower()] = os.environ[variable]
    return clues


def register(parent: dict[str, str], event: str, run_id: str, rank: int, run_dir: Path, prov_path: Path) -> None:
    """Append one line to the workflow's registry (one small O_APPEND write: safe from many ranks)."""
    directory = parent.get("workflow_dir")
    if not directory:
        return
    entry: dict[str, Any] = {"event": event, "task_id": parent["task_id"],
                             "execution_id": parent.get("execution_id", ""), "run_id": run_id, "rank": rank,
                             "run_dir": str(run_dir), "prov_path": str(prov_path), "time": time.time()}
    if not parent["task_id"] and event == "start":
        entry["clues"] = process_clues()
    try:
        append_line(Path(directory) / REGISTRY, json.dumps(entry))
    except OSError as exc:  # a stale or unreachable workflow directory must not stop the training
        warnings.warn(f"yprov4ml: run {run_id} could not register with the workflow in {directory} ({exc}); "
                      "the bridge will not find it by itself: attach its directory to its task "
                      "(Task.attach) once the workflow directory is reachable", RuntimeWarning, stacklevel=3)
