"""Runs cwltool with its jobs reported, one JSON line each, on a file descriptor (``managers/cwl.py`` reads them).

This file is run by cwltool's own interpreter, not imported: cwltool pins
``prov==1.5.1`` and yprov4ml needs prov 3, so the two never share an
environment. It therefore uses only the standard library and cwltool::

    CWLTOOL_PYTHON cwltool_engine.py EVENTS_FD [cwltool arguments...]

The hooks are cwltool's Python interfaces: each executor's ``run_jobs`` (whichever
``--parallel`` picks) is wrapped so that every job its process yields (a
CommandLineTool, an ExpressionTool, a step of a sub-workflow) has its ``run``,
and its ``output_callback`` wrapped, and its environment extended; the job's exit
status comes from cwltool's own log record for that job (its arguments name
the job: no text is parsed). Each job's environment gets the workflow's
``YPROV4WFS_*`` variables and its task id, so a yprov4ml run in its command
attaches to it. Files are hashed here, when a job has ended, because cwltool
deletes intermediate outputs when the workflow ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlparse

TASK_ID = "YPROV4WFS_TASK_ID"  # yprov4ml.parent.TASK_ID (not importable here)
IDENTITY_PREFIX = "YPROV4WFS_"
ORIGINAL_VERSION = "http://commonwl.org/cwltool#original_cwlVersion"  # cwltool upgrades documents as it loads them
MAX_FILES = 10_000  # per job: a directory listing of a million files is not a record of inputs


class Events:
    """One JSON line per event on the driver's pipe, whole lines from several threads."""

    def __init__(self, fd: int):
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def send(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "time": time.time(), **fields}, default=str)
        with self._lock:
            self._out.write(line + "\n")


def task_id(job_name: str) -> str:
    """cwltool's unique job name (``train``, ``train_2``, ``inner_step``) as a task id."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", job_name).strip("._-") or "job"


def _local(location: str) -> str | None:
    parsed = urlparse(location)
    return unquote(parsed.path) if parsed.scheme in ("file", "") and parsed.path else None


def _files(value: Any, found: list[dict[str, Any]]) -> None:
    """Every File and Directory in a CWL input or output object."""
    if len(found) >= MAX_FILES:
        return
    if isinstance(value, dict):
        if value.get("class") in ("File", "Directory") and isinstance(value.get("location"), str):
            path = _local(value["location"])
            if path:
                found.append({"path": path, "class": value["class"]})
            for secondary in value.get("secondaryFiles") or []:
                _files(secondary, found)
            return
        for item in value.values():
            _files(item, found)
    elif isinstance(value, list):
        for item in value:
            _files(item, found)


def _with_digests(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in files:
        try:
            if item["class"] == "File" and os.path.isfile(item["path"]):
                with open(item["path"], "rb") as handle:
                    item["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
                item["size"] = os.path.getsize(item["path"])
        except OSError as exc:  # unreadable: said, not fatal to the workflow
            item["problem"] = f"{item['path']} could not be read: {exc}"
    return files


def _step_files(tool: Any, depth: int = 0) -> set[str]:
    """The local documents a workflow's steps run (``run: train.cwl``), those of sub-workflows too."""
    found: set[str] = set()
    for step in (tool.get("steps") or []) if isinstance(tool, dict) and depth < 20 else []:
        run = step.get("run")
        location = run if isinstance(run, str) else (run or {}).get("id", "") if isinstance(run, dict) else ""
        path = _local(str(location).split("#")[0]) if location else None
        if path and os.path.isfile(path):
            found.add(path)
        if isinstance(run, dict):
            found |= _step_files(run, depth + 1)
    return found


class JobErrors(logging.Handler):
    """cwltool's warnings and errors about one job (``[job %s] ...``, the job's name its first argument)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_job: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("[job %s]") and record.args:
            name = record.args[0] if isinstance(record.args, tuple) else None
            if isinstance(name, str):
                self.by_job.setdefault(name, []).append(record.getMessage())


class Recorder:
    """Wraps each job cwltool yields so that its start, end, files and status are reported."""

    def __init__(self, events: Events, errors: JobErrors):
        self.events, self.errors = events, errors
        self.identity = {k: v for k, v in os.environ.items() if k.startswith(IDENTITY_PREFIX)}
        self.host = socket.gethostname()
        self._workflow_seen = False

    def workflow(self, process: Any) -> None:
        if self._workflow_seen:
            return
        self._workflow_seen = True
        tool = getattr(process, "tool", {}) or {}
        metadata = getattr(process, "metadata", {}) or {}
        self.events.send("workflow", id=str(tool.get("id", "")), label=tool.get("label"), doc=tool.get("doc"),
                         cwl_class=tool.get("class"), cwl_version=metadata.get("http://commonwl.org/cwltool#original_cwlVersion") or metadata.get("cwlVersion"),
                         file=_local(str(tool.get("id", "")).split("#")[0]),
                         steps=[str(s.get("id", "")).split("#")[-1].split("/")[-1] for s in tool.get("steps", [])],
                         parts=sorted(_step_files(tool)))

    def jobs(self, jobs: Iterator[Any]) -> Iterator[Any]:
        for job in jobs:
            # a job that runs something has an output callback; a WorkflowJob (its steps come through here) has not
            if hasattr(job, "output_callback") and isinstance(getattr(job, "name", None), str):
                self._wrap(job)
            yield job

    def _wrap(self, job: Any) -> None:
        task = task_id(job.name)
        run, callback = job.run, job.output_callback
        ended = threading.Event()

        def output_callback(outputs: Any, status: str) -> None:
            if not ended.is_set():
                ended.set()
                produced: list[dict[str, Any]] = []
                _files(outputs, produced)
                self.events.send("job_ended", task=task, status=status, outputs=_with_digests(produced),
                                 errors=self.errors.by_job.pop(job.name, []))
            if callback is not None:
                callback(outputs, status)

        def wrapped_run(runtime_context: Any, *args: Any, **kwargs: Any) -> Any:
            used: list[dict[str, Any]] = []
            _files(getattr(getattr(job, "builder", None), "job", {}), used)
            command = getattr(job, "command_line", None) or []
            text = shlex.join(str(c) for c in command)
            for stream, sign in (("stdin", "<"), ("stdout", ">"), ("stderr", "2>")):
                if getattr(job, stream, None):
                    text += f" {sign} {shlex.quote(str(getattr(job, stream)))}"
            if isinstance(getattr(job, "environment", None), dict):  # built when the job was made, used by run
                job.environment.update({**self.identity, TASK_ID: task})  # a run in its command attaches to it
            self.events.send("job_started", task=task, name=job.name, command=text, inputs=_with_digests(used),
                             host=self.host, job_class=type(job).__name__, outdir=getattr(job, "outdir", None))
            try:
                return run(runtime_context, *args, **kwargs)
            except BaseException as exc:  # cwltool raised before its callback: the job failed all the same
                if not ended.is_set():
                    ended.set()
                    self.events.send("job_ended", task=task, status="permanentFail", outputs=[],
                                     errors=[*self.errors.by_job.pop(job.name, []), f"{type(exc).__name__}: {exc}"])
                raise

        job.run, job.output_callback = wrapped_run, output_callback


def _wrap_executor(executor_class: type, recorder: Recorder) -> None:
    original: Callable[..., Any] = executor_class.run_jobs

    def run_jobs(self: Any, process: Any, job_order: Any, logger: Any, runtime_context: Any) -> None:
        recorder.workflow(process)
        make_jobs = process.job
        process.job = lambda *a, **k: recorder.jobs(make_jobs(*a, **k))  # this process only, not its class
        try:
            original(self, process, job_order, logger, runtime_context)
        finally:
            del process.job

    executor_class.run_jobs = run_jobs


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit():
        print("usage: cwltool_engine.py EVENTS_FD [cwltool arguments...]", file=sys.stderr)
        return 2
    try:
        import cwltool.main
        from cwltool.executors import MultithreadedJobExecutor, SingleJobExecutor
        from cwltool.loghandler import _logger
    except ImportError as exc:
        print(f"this interpreter ({sys.executable}) has no cwltool ({exc}): give the cwltool that runs the "
              "workflow (--cwltool PATH)", file=sys.stderr)
        return 2
    events = Events(int(argv[0]))
    errors = JobErrors()
    _logger.addHandler(errors)
    recorder = Recorder(events, errors)
    for executor_class in (SingleJobExecutor, MultithreadedJobExecutor):
        _wrap_executor(executor_class, recorder)
    events.send("engine", version=cwltool.main.versionstring().split()[-1], argv=argv[1:], cwd=os.getcwd(), pid=os.getpid())
    status = cwltool.main.main(argv[1:])
    events.send("exit", code=status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
