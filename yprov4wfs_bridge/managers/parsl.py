"""Parsl: a workflow recorded from Parsl's own task states, enabled by one line after ``parsl.load``::

    parsl.load(config)
    record("provenance")        # yprov4wfs_bridge.managers.parsl.record

Every app call becomes a task (its app, executor, File inputs and outputs,
stdout/stderr, the tasks it waited on, each try); its function is wrapped so
that, on the worker, the task's identity is in the environment: yprov4ml runs
started in a python_app, or in the command of a bash_app (``mpiexec``,
``srun``), attach to the task. When Parsl cleans up (``with parsl.load(...)``,
``parsl.dfk().cleanup()``, or at exit) the record, bundle, graph and crate
are written.

Parsl has no public task-event interface; this hook wraps the
DataFlowKernel's ``_update_task_state``, through which every state change of
every task passes (Parsl 2024.1 to 2026.10). A DataFlowKernel without it is
refused with a clear error rather than recorded half.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from yprov4ml.parent import TASK_ID, WORKFLOW_DIR, in_task
from yprov4ml.storage.files import append_line

from ..errors import WorkflowError
from ..events import WorkflowRecorder
from ..ids import safe_id
from ..layout import EVENTS

PARSL_URL = "https://parsl-project.org"
# Parsl's States, by name (parsl.dataflow.states.States)
_FINAL_OK = {"exec_done", "memo_done"}


def _definition() -> dict[str, str]:
    """The Parsl script being run (``python pipeline.py``): the crate's main workflow; none from a REPL."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    return {"definition": str(Path(script).absolute()), "language": "parsl"} if script else {}


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime.datetime) else None


def _local_path(item: Any) -> str | None:
    """The local path of a Parsl File or DataFuture, or None (a remote URL, or not a file)."""
    item = getattr(item, "file_obj", item)
    if getattr(item, "scheme", "file") not in ("file", None):
        return None
    path = getattr(item, "filepath", None)
    return str(path) if path else None


def _is_bash(func: Any) -> bool:
    seen = 0
    while func is not None and seen < 10:
        if isinstance(func, partial) and getattr(func.func, "__name__", "") == "remote_side_bash_executor":
            return True
        func, seen = getattr(func, "__wrapped__", None), seen + 1
    return False


class InTask:
    """The app's function, run on a worker with its task's identity in the environment (and in the
    context, for runs started in the same thread), then the environment restored."""

    def __init__(self, func: Any, identity: dict[str, str]):
        self.func, self.identity = func, identity
        self.__name__ = getattr(func, "__name__", "app")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The app's function travels as Parsl itself sends it (serialized on its own): nested in another
        # object, dill would carry the submitting script's whole namespace along.
        from parsl.serialize import serialize

        return _in_task, (serialize(self.func), self.identity)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        saved = {k: os.environ.get(k) for k in self.identity}
        os.environ.update(self.identity)
        self._note_worker()
        try:
            with in_task(self.identity):
                return self.func(*args, **kwargs)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _note_worker(self) -> None:
        """Where this try runs, appended to the journal when the worker sees the workflow's directory."""
        event = {"event": "task_noted", "time": time.time(), "task": self.identity[TASK_ID],
                 "execution_id": self.identity.get("YPROV4WFS_EXECUTION_ID", ""), "host": socket.gethostname(),
                 "attributes": {"worker_host": socket.gethostname(), "worker_pid": os.getpid()}}
        try:
            append_line(Path(self.identity[WORKFLOW_DIR]) / EVENTS, json.dumps(event), create=False)
        except OSError:
            pass  # no shared file system with the submitting side: the submit side's record stands


def _in_task(func: bytes, identity: dict[str, str]) -> InTask:
    from parsl.serialize import deserialize

    return InTask(deserialize(func), identity)


class ParslRecorder:
    """Turns a DataFlowKernel's task state changes into a :class:`WorkflowRecorder`'s events."""

    def __init__(self, dfk: Any, recorder: WorkflowRecorder, build_options: dict[str, Any]):
        self.dfk, self.recorder, self.build_options = dfk, recorder, build_options
        self._tasks: dict[int, str] = {}
        self.result: Any = None
        self._update = dfk._update_task_state
        self._cleanup = dfk.cleanup
        dfk._update_task_state = self._on_state
        dfk.cleanup = self._on_cleanup

    def _on_state(self, task_record: Any, new_state: Any) -> None:
        self._update(task_record, new_state)
        try:
            self._record(task_record, getattr(new_state, "name", str(new_state)))
        except Exception as exc:  # the record must never stop the workflow
            print(f"yprov4wfs: could not record Parsl task {task_record.get('id')}: {type(exc).__name__}: {exc}")

    def _record(self, task: Any, state: str) -> None:
        tid = task["id"]
        if state == "pending" and tid not in self._tasks:
            self._submitted(task)
            return
        name = self._tasks.get(tid)
        if name is None:
            return
        kwargs = task.get("kwargs") or {}
        if state == "launched":
            self.recorder.task_started(name, when=_seconds(task.get("try_time_launched")))
        elif state in _FINAL_OK:
            when = _seconds(task.get("time_returned")) or time.time()
            if state == "memo_done":
                self.recorder.task_noted(name, {"from_memo": True}, when=when)
                self.recorder.task_started(name, when=when)
            for item in kwargs.get("outputs", []) or []:
                path = _local_path(item)
                if path:
                    self.recorder.data_generated(name, path, when=when)
            self._std_streams(name, kwargs, when)
            self.recorder.task_finished(name, when=when)
        elif state in ("fail_retryable", "failed"):
            history = task.get("fail_history") or []
            when = _seconds(task.get("try_time_returned")) or time.time()
            self._std_streams(name, kwargs, when)
            self.recorder.task_failed(name, history[-1] if history else state, will_retry=state == "fail_retryable",
                                      when=when)
        elif state == "dep_fail":
            self.recorder.task_not_run(name, "a task it depends on failed")

    def _submitted(self, task: Any) -> None:
        tid = task["id"]
        name = safe_id(f"{task.get('func_name') or 'app'}-{tid}")
        self._tasks[tid] = name
        depends = [self._tasks[d.tid] for d in task.get("depends") or []
                   if isinstance(getattr(d, "tid", None), int) and d.tid in self._tasks]
        spec = task.get("resource_specification") or {}
        attributes = {"app": task.get("func_name"), "app_kind": "bash_app" if _is_bash(task["func"]) else "python_app",
                      "executor": task.get("executor"), "parsl_task_id": tid,
                      "parsl_run_id": getattr(self.dfk, "run_id", None),
                      "resources": spec if spec else None}
        when = _seconds(task.get("time_invoked"))
        self.recorder.task_submitted(name, name=str(task.get("func_name") or ""), depends_on=depends,
                                     attributes=attributes, when=when)
        for item in (task.get("kwargs") or {}).get("inputs", []) or []:
            path = _local_path(item)
            if path:
                self.recorder.data_used(name, path, when=when)
        task["func"] = InTask(task["func"], self.recorder.task_identity(name))

    def _std_streams(self, name: str, kwargs: dict[str, Any], when: float) -> None:
        for key in ("stdout", "stderr"):
            target = kwargs.get(key)  # a path, (path, mode), or a File
            if isinstance(target, tuple):
                target = target[0]
            path = target if isinstance(target, (str, os.PathLike)) else _local_path(target)
            if path is not None and Path(path).is_file():
                self.recorder.data_generated(name, path, role=key, when=when)

    def _on_cleanup(self) -> None:
        try:
            self._cleanup()
        finally:
            self.finish()

    def finish(self) -> Any:
        """End the record (once): FAILED when a task failed, INTERRUPTED when tasks were left unfinished."""
        if self.result is not None:
            return self.result
        statuses = [self.recorder.task_status(t) for t in self._tasks.values()]
        if any(s == "FAILED" for s in statuses):
            status, error = "FAILED", "a task failed"
        elif any(s in ("PENDING", "RUNNING", "RETRYING") for s in statuses):
            status, error = "INTERRUPTED", "the workflow was cleaned up with tasks unfinished"
        else:
            status, error = "FINISHED", None
        self.recorder.workflow_ended(status, error)
        self.result = self.recorder.finish(**self.build_options)
        return self.result


def record(directory: str | os.PathLike = "provenance", workflow_id: str | None = None, name: str | None = None,
           dfk: Any = None, **build_options: Any) -> ParslRecorder:
    """Record the loaded Parsl workflow (``parsl.load`` first) into ``directory``; bundle, graph and
    crate are written when Parsl cleans up. ``build_options`` pass to ``yprov4wfs_bridge.build``
    (``metadata``, ``svg``, ``crate``...)."""
    import parsl

    dfk = dfk or parsl.dfk()
    if not callable(getattr(dfk, "_update_task_state", None)) or not callable(getattr(dfk, "cleanup", None)):
        raise WorkflowError(f"this Parsl ({getattr(parsl, '__version__', '?')}) has no "
                            "DataFlowKernel._update_task_state to follow task states through; yprov4wfs_bridge "
                            "supports Parsl 2024.1 to 2026.10")
    workdir = Path(os.getcwd())
    recorder = WorkflowRecorder(directory, workflow_id or safe_id(workdir.name or "workflow"), name=name,
                                manager=("parsl", str(getattr(parsl, "__version__", "")), PARSL_URL), root=workdir)
    recorder.workflow_started({"parsl_run_id": getattr(dfk, "run_id", None),
                               "parsl_run_dir": getattr(dfk, "run_dir", None), "host": socket.gethostname(),
                               "executors": sorted(getattr(dfk, "executors", {}) or {}),
                               "parsl_version": str(getattr(parsl, "__version__", "")),
                               **_definition()})
    return ParslRecorder(dfk, recorder, build_options)
