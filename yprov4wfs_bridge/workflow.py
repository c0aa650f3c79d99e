"""The workflow level: Workflow, Task, Data, Agent — close to yProv4WFs, as context managers.

    with Workflow("pipeline", directory="out") as wf:
        raw = wf.data("raw", "data/raw.csv")
        with wf.task("preprocess", inputs=[raw]) as task:
            ...                                   # a yprov4ml run started here attaches itself
            clean = task.output("clean", "data/clean.csv")

While a task runs, its identity is in the environment (``YPROV4WFS_*``), so
yprov4ml runs started in the same process or in child processes (subprocess,
mpiexec, srun) record it and register their documents in ``runs.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from yprov4ml.parent import EXECUTION_ID, REGISTRY, TASK_ID, WORKFLOW_DIR, WORKFLOW_ID
from yprov4ml.storage.files import atomic_write_text, sha256_of

from .errors import WorkflowError
from .ids import VALID_ID
from .layout import MANIFEST, WORKFLOW_PROV
from .provwf import workflow_document
from .runs import check_attachable



def _check_id(kind: str, identifier: str) -> str:
    if not isinstance(identifier, str) or not VALID_ID.match(identifier):
        raise WorkflowError(f"{kind} id {identifier!r} must use letters, digits, '_', '.' or '-'")
    return identifier


@dataclass
class Agent:
    """Who ran the workflow or a task: a person, an organisation, or software."""

    id: str
    name: str = ""
    kind: str = "Person"  # Person | Organization | SoftwareAgent

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name or self.id, "kind": self.kind}


@dataclass
class Data:
    """A data item: a file or directory with its size and sha256, produced or consumed by tasks."""

    id: str
    path: str
    size: int | None = None
    sha256: str | None = None
    generated_by: str | None = None
    time: float = 0.0

    @classmethod
    def from_path(cls, identifier: str, path: str | os.PathLike, generated_by: str | None = None) -> "Data":
        target = Path(path)
        if not target.exists():
            raise WorkflowError(f"data {identifier!r}: {target} does not exist; write it before declaring it")
        if target.is_dir():
            size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            digest = None
        else:
            size, digest = target.stat().st_size, sha256_of(target)
        return cls(_check_id("data", identifier), str(target.resolve()), size, digest, generated_by, time.time())

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Task:
    """One step of the workflow; a context manager that records its start, end and status."""

    id: str
    workflow: "Workflow"
    inputs: list[Data] = field(default_factory=list)
    outputs: list[Data] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    command: str = ""
    start_time: float | None = None
    end_time: float | None = None
    status: str = "PENDING"
    error: str | None = None
    attached: list[str] = field(default_factory=list)  # run directories / PROV files attached by hand
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __enter__(self) -> "Task":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.end()
        else:
            detail = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.end(status="FAILED", error=detail)

    def start(self) -> None:
        """Mark the task running and hand its identity to runs started from now on."""
        if self.start_time is not None:
            raise WorkflowError(f"task {self.id!r} was already started; give a second execution its own id")
        self.start_time, self.status = time.time(), "RUNNING"
        identity = self.workflow.task_identity(self.id)
        self._saved_env = {k: os.environ.get(k) for k in identity}
        os.environ.update(identity)
        self.workflow._save()

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Mark the task ended and take its identity out of the environment."""
        if self.start_time is None:
            raise WorkflowError(f"task {self.id!r} ends before it started: call start() or use `with`")
        self.end_time, self.status, self.error = time.time(), status, error
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.workflow._save()

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process (``subprocess.run(..., env=task.environment())``)."""
        env = dict(os.environ if base is None else base)
        env.update(self.workflow.task_identity(self.id))
        return env

    def input(self, data: Data) -> Data:
        """Declare that the task used ``data``."""
        if data not in self.inputs:
            self.inputs.append(data)
        return data

    def output(self, identifier: str, path: str | os.PathLike) -> Data:
        """Declare a file or directory the task produced (hashed now)."""
        data = Data.from_path(identifier, path, generated_by=self.id)
        self.workflow._add_data(data)
        self.outputs.append(data)
        return data

    def attach(self, *paths: str | os.PathLike) -> None:
        """Attach yprov4ml run directories or PROV-JSON files recorded outside the task's context."""
        for path in paths:
            self.attached.append(str(check_attachable(Path(path))))
        self.workflow._save()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "inputs": [d.id for d in self.inputs], "outputs": [d.id for d in self.outputs],
                "agents": [a.id for a in self.agents], "command": self.command, "start_time": self.start_time,
                "end_time": self.end_time, "status": self.status, "error": self.error, "attached": self.attached}


class Workflow:
    """A workflow execution: its tasks in order, its data and agents, written under ``directory``."""

    def __init__(self, workflow_id: str, directory: str | os.PathLike, name: str | None = None,
                 agents: Iterable[Agent] = (), description: str = ""):
        self.id = _check_id("workflow", workflow_id)
        self.name = name or workflow_id
        self.description = description
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tasks: dict[str, Task] = {}
        self.data_items: dict[str, Data] = {}
        self.agents: list[Agent] = list(agents) or [Agent(os.environ.get("USER") or "user")]
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.status = "PENDING"
        self.error: str | None = None
        self.execution_id = uuid.uuid4().hex  # runs register under it: a re-run here never claims old runs

    def task_identity(self, task_id: str) -> dict[str, str]:
        """The environment that ties a run (in this process or a child) to task ``task_id`` of this execution."""
        return {TASK_ID: task_id, WORKFLOW_ID: self.id, WORKFLOW_DIR: str(self.directory),
                EXECUTION_ID: self.execution_id}

    def __enter__(self) -> "Workflow":
        self.start_time, self.status = time.time(), "RUNNING"
        self._save()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end_time = time.time()
        if exc is None:
            self.status = "FINISHED"
        else:
            self.status = "FAILED"
            self.error = "".join(traceback.format_exception_only(exc_type, exc)).strip()
        self.write_prov()

    def task(self, task_id: str, inputs: Iterable[Data] = (), agents: Iterable[Agent] = (),
             command: str = "") -> Task:
        """A new task; ids are unique within the workflow."""
        _check_id("task", task_id)
        if task_id in self.tasks:
            raise WorkflowError(f"the workflow already has a task {task_id!r}; task ids must be unique")
        task = Task(task_id, self, list(inputs), [], list(agents) or list(self.agents), command)
        self.tasks[task_id] = task
        return task

    def data(self, identifier: str, path: str | os.PathLike) -> Data:
        """Declare an existing input of the workflow (hashed now)."""
        data = Data.from_path(identifier, path)
        self._add_data(data)
        return data

    def _add_data(self, data: Data) -> None:
        existing = self.data_items.get(data.id)
        if existing is not None and existing.path != data.path:
            raise WorkflowError(f"data id {data.id!r} already names {existing.path}; give {data.path} another id")
        self.data_items[data.id] = data

    def manifest(self) -> dict[str, Any]:
        """Everything about this execution, as plain JSON."""
        return {"id": self.id, "execution_id": self.execution_id, "name": self.name, "description": self.description,
                "start_time": self.start_time,
                "end_time": self.end_time, "status": self.status, "error": self.error,
                "agents": [a.as_dict() for a in self.agents], "tasks": [t.as_dict() for t in self.tasks.values()],
                "data": [d.as_dict() for d in self.data_items.values()]}

    def _save(self) -> None:
        atomic_write_text(self.directory / MANIFEST, json.dumps(self.manifest(), indent=2))

    def write_prov(self) -> Path:
        """Write the manifest and the workflow-level PROV-JSON (no torch, no ML runs needed)."""
        self._save()
        path = self.directory / WORKFLOW_PROV
        atomic_write_text(path, json.dumps(workflow_document(self.manifest()), indent=2))
        return path

    @property
    def registry(self) -> Path:
        return self.directory / REGISTRY
