"""The adapter interface: a workflow manager's events → the workflow record, bundle, graph and crate.

A manager adapter (``managers/``) turns what its manager reports into these
calls, and nothing else::

    recorder = WorkflowRecorder("prov", "my-pipeline", manager=("snakemake", "9.27.1"))
    recorder.workflow_started()
    recorder.task_submitted("train-3", name="train", command="python train.py", depends_on=["prep-1"])
    recorder.task_started("train-3", host="n1")
    recorder.data_used("train-3", "data/clean.csv")
    recorder.data_generated("train-3", "model.pt")
    recorder.task_finished("train-3")          # or task_failed("train-3", "exit 1", will_retry=True)
    recorder.workflow_ended("FINISHED")
    result = recorder.finish()                 # bundle.prov.json, graph, crate/

Every call appends one line to ``events.jsonl`` first (nothing recorded is
lost if the manager is killed: ``yprov4wfs-bridge build`` replays it), is
thread-safe, and never blocks on a file's size: data are hashed by a
background pool. yprov4ml runs started in a job attach themselves: through
``task_identity`` where the manager can give a job its own environment,
else through ``workflow_identity`` and the clues they register (``matching``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

from yprov4ml.parent import EXECUTION_ID, TASK_ID, WORKFLOW_DIR, WORKFLOW_ID
from yprov4ml.storage.files import atomic_write_text, sha256_of

from .errors import WorkflowError
from .journal import JournalWriter, Replay
from .ids import VALID_ID, safe_id
from .layout import MANIFEST

HASH_WORKERS = 2


def _size_and_digest(path: Path) -> dict[str, Any]:
    if path.is_dir():
        return {"size": sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()),
                "sha256": None}
    if path.is_file():
        return {"size": path.stat().st_size, "sha256": sha256_of(path)}
    return {"size": None, "sha256": None, "problem": f"{path} was gone when it was to be hashed"}


class WorkflowRecorder:
    """One workflow execution recorded from a manager's events (see the module's docstring)."""

    def __init__(self, directory: str | os.PathLike, workflow_id: str, name: str | None = None,
                 description: str = "", manager: tuple[str, ...] | None = None, user: str | None = None,
                 root: str | os.PathLike | None = None):
        if not isinstance(workflow_id, str) or not VALID_ID.match(workflow_id):
            raise WorkflowError(f"workflow id {workflow_id!r} must use letters, digits, '_', '.' or '-' "
                                f"(for instance {safe_id(str(workflow_id))!r})")
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.root = Path(root or os.getcwd()).absolute()  # relative data paths are relative to it
        self.id, self.name, self.description = workflow_id, name or workflow_id, description
        self.execution_id = uuid.uuid4().hex
        agents = [{"id": safe_id(user or os.environ.get("USER") or "user"), "name": user or os.environ.get("USER")
                   or "user", "kind": "Person"}]
        if manager:  # (name, version[, url]): the software that ran the workflow
            agents.append({"id": safe_id(manager[0]), "name": manager[0], "kind": "SoftwareAgent",
                           "version": manager[1] if len(manager) > 1 else "",
                           **({"url": manager[2]} if len(manager) > 2 else {})})
        self._agents = agents
        self._journal = JournalWriter(self.directory)
        self._state = Replay()
        self._lock = threading.Lock()
        self._hashing: dict[str, Future] = {}
        self._ids_of: dict[str, str] = {}  # data path → id
        self._paths_of: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="yprov4wfs-hash")
        self._hashing_open = True
        self._finished = False

    # --- identities handed to jobs -------------------------------------------------------------------
    def workflow_identity(self) -> dict[str, str]:
        """The environment under which runs register with this workflow (and clues to their job)."""
        return {WORKFLOW_ID: self.id, WORKFLOW_DIR: str(self.directory), EXECUTION_ID: self.execution_id}

    def task_identity(self, task_id: str) -> dict[str, str]:
        """The environment that ties runs to task ``task_id`` (for managers that can set a job's environment)."""
        return {**self.workflow_identity(), TASK_ID: task_id}

    # --- events -------------------------------------------------------------------------------------
    def _emit(self, kind: str, when: float | None, **fields: Any) -> None:
        event = {"event": kind, "time": time.time() if when is None else float(when),
                 "execution_id": self.execution_id, **fields}
        with self._lock:
            if self._finished:
                return  # a late report after finish(): the record is already written
            self._state.apply(json.loads(self._journal.append(event)))  # exactly what a replay will see

    def workflow_started(self, attributes: dict[str, Any] | None = None, when: float | None = None) -> None:
        """The workflow began: who runs it, with what (``attributes``: host, command, config...)."""
        self._emit("workflow_started", when, workflow={
            "id": self.id, "execution_id": self.execution_id, "name": self.name, "description": self.description,
            "agents": self._agents, "attributes": _plain(attributes), "root": str(self.root)})
        self._save()

    def workflow_noted(self, attributes: dict[str, Any], when: float | None = None) -> None:
        """More facts about the workflow learnt on the way (its targets, a configuration)."""
        self._emit("workflow_noted", when, attributes=_plain(attributes))

    def task_submitted(self, task_id: str, name: str = "", command: str = "", depends_on: Iterable[str] = (),
                       attributes: dict[str, Any] | None = None, markers: Iterable[Sequence[str]] = (),
                       when: float | None = None) -> None:
        """A task was handed to the manager's scheduler (once per task, however often it is tried).
        ``markers``: argument sequences that, found in a process's command line, say it runs this task."""
        self._check(task_id)
        self._emit("task_submitted", when, task=task_id, name=name, command=command or "",
                   depends_on=[d for d in depends_on if VALID_ID.match(d)], attributes=_plain(attributes),
                   markers=[[str(a) for a in m] for m in markers])

    def task_started(self, task_id: str, host: str | None = None, executor_job_id: str | None = None,
                     when: float | None = None) -> None:
        """An attempt of the task began (a retry is a new attempt of the same task)."""
        self._emit("task_started", when, task=self._check(task_id), host=_text(host),
                   executor_job_id=_text(executor_job_id))

    def task_noted(self, task_id: str, attributes: dict[str, Any] | None = None,
                   executor_job_id: str | None = None, when: float | None = None) -> None:
        """More facts about a task learnt on the way (a batch job id, a log file's place)."""
        self._emit("task_noted", when, task=self._check(task_id), attributes=_plain(attributes),
                   executor_job_id=_text(executor_job_id))

    def task_finished(self, task_id: str, when: float | None = None) -> None:
        self._emit("task_finished", when, task=self._check(task_id))

    def task_failed(self, task_id: str, error: str, will_retry: bool = False, when: float | None = None) -> None:
        """An attempt failed; ``will_retry`` when the manager tries it again."""
        self._emit("task_failed", when, task=self._check(task_id), error=str(error)[:4000], will_retry=will_retry)

    def task_not_run(self, task_id: str, reason: str, when: float | None = None) -> None:
        """The task will never run (an upstream task failed)."""
        self._emit("task_not_run", when, task=self._check(task_id), error=str(reason)[:4000])

    def data_used(self, task_id: str, path: str | os.PathLike, when: float | None = None,
                  size: int | None = None, sha256: str | None = None) -> str:
        """The task reads ``path``; returns its data id. Hashed in the background, once, unless the manager
        gives its ``size`` and ``sha256`` (it hashed the file while it was there)."""
        return self._data("data_used", task_id, path, "data", when, size, sha256)

    def data_generated(self, task_id: str, path: str | os.PathLike, role: str = "output",
                       when: float | None = None, size: int | None = None, sha256: str | None = None) -> str:
        """The task wrote ``path`` (``role``: output, log, benchmark...); returns its data id. ``size`` and
        ``sha256`` as for :meth:`data_used`."""
        return self._data("data_generated", task_id, path, role, when, size, sha256)

    def _data(self, kind: str, task_id: str, path: str | os.PathLike, role: str, when: float | None,
              size: int | None = None, sha256: str | None = None) -> str:
        self._check(task_id)
        target = Path(os.path.normpath(self.root / Path(path)))
        try:
            label = target.relative_to(self.root).as_posix()
        except ValueError:
            label = target.as_posix()
        data_id = self._data_id(label, str(target))
        self._emit(kind, when, task=task_id, id=data_id, path=str(target), role=role)
        if sha256 is not None:
            if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
                raise WorkflowError(f"sha256 of {target} must be 64 lower-case hex digits, not {sha256!r}")
            self._emit("data_hashed", None, id=data_id, size=size, sha256=sha256)
            return data_id
        rehash = kind == "data_generated"  # a new version of a file a task wrote: hashed again
        with self._lock:
            if self._hashing_open and (data_id not in self._hashing or rehash):
                self._hashing[data_id] = self._pool.submit(self._hash, data_id, target)
        return data_id

    def _data_id(self, label: str, path: str) -> str:
        """``data_raw.csv`` for ``data/raw.csv``: readable, and unique (a digest is added when two paths
        would share a name)."""
        with self._lock:
            known = self._ids_of.get(path)
            if known:
                return known
            plain = re.sub(r"[^A-Za-z0-9_.\-]+", "_", label).strip("._-")
            data_id = plain if VALID_ID.match(plain) and plain not in self._paths_of else safe_id(label)
            self._ids_of[path], self._paths_of[data_id] = data_id, path
            return data_id

    def _hash(self, data_id: str, path: Path) -> None:
        try:
            facts = _size_and_digest(path)
        except OSError as exc:
            facts = {"size": None, "sha256": None, "problem": f"{path} could not be read: {exc}"}
        self._emit("data_hashed", None, id=data_id, **facts)

    def workflow_ended(self, status: str = "FINISHED", error: str | None = None, when: float | None = None) -> None:
        """The workflow is over: FINISHED, FAILED or INTERRUPTED. Tasks still running are INTERRUPTED."""
        if status not in ("FINISHED", "FAILED", "INTERRUPTED"):
            raise WorkflowError(f"a workflow ends FINISHED, FAILED or INTERRUPTED, not {status!r}")
        self._emit("workflow_ended", when, status=status, error=error)

    # --- the record ---------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._state.manifest))

    def task_status(self, task_id: str) -> str | None:
        with self._lock:
            tasks = self._state.manifest["tasks"] if self._state.manifest else []
            return next((t["status"] for t in tasks if t["id"] == task_id), None)

    def _check(self, task_id: str) -> str:
        if not isinstance(task_id, str) or not VALID_ID.match(task_id):
            raise WorkflowError(f"task id {task_id!r} must use letters, digits, '_', '.' or '-' "
                                f"(for instance {safe_id(str(task_id))!r})")
        return task_id

    def _save(self) -> None:
        with self._lock:
            text = json.dumps(self._state.manifest, indent=1)
        atomic_write_text(self.directory / MANIFEST, text)

    def finish(self, build: bool = True, **build_options: Any) -> Any:
        """Wait for the hashes, tell which job ran each run, write the manifest, then (``build``) the
        bundle, graph and crate as ``yprov4wfs_bridge.build`` does (its options pass through). The runs are
        matched to jobs as a rebuild from the journal matches them (``matching.apply_claims``)."""
        from .matching import apply_claims
        from .outputs import build as build_outputs

        with self._lock:
            self._hashing_open = False  # the hashes under way are waited for; none is started
        self._pool.shutdown(wait=True)
        with self._lock:
            if self._state.manifest is not None:
                apply_claims(self.directory, self._state)
            self._finished = True
            self._journal.close()
        if not build:
            self._save()
            return None
        return build_outputs(self.directory, **build_options)  # replays the journal: writes the manifest


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _plain(values: dict[str, Any] | None) -> dict[str, Any]:
    """Attributes as JSON scalars (lists and mappings as JSON text), names safe as QName parts."""
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = safe_id(str(key))
        if value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value if not isinstance(value, str) else value[:4000]
        else:
            out[name] = json.dumps(value, default=str, sort_keys=True)[:4000]
    return {k: v for k, v in out.items() if v is not None}
