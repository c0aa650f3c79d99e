"""Snakemake's log events → the workflow record (the logic of ``snakemake --logger yprov4wfs``).

Snakemake (9.x, snakemake-interface-logger-plugins 2.x) hands every log
record to a logger plugin, in a thread of its own. The records that carry an
``event`` say what happens: the workflow started; a job started (``job_info``:
rule, wildcards, input, output, log, threads, resources, shell command); a job
finished or failed; with the Slurm executor, a message names the Slurm job
id of each job. This module turns them into :class:`WorkflowRecorder` calls;
``managers/snakemake_plugin`` is the thin plug-in Snakemake finds.

Snakemake runs jobs as children of one process, so a job cannot be given
its own environment: the workflow's identity is set in Snakemake's own
environment (inherited by local jobs and exported to Slurm jobs), and runs
started in a job are matched to it afterwards (``yprov4wfs_bridge.matching``).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..events import WorkflowRecorder
from ..ids import safe_id

SLURM_SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.*)\)\.")
INTERRUPTED = ("Terminating processes on user request", "KeyboardInterrupt")
HIDDEN_RESOURCES = {"_cores", "_nodes", "tmpdir"}
SNAKEMAKE_URL = "https://snakemake.github.io"
MAX_PENDING_ERRORS = 50


@dataclass
class SnakemakeOptions:
    """What ``--logger-yprov4wfs-*`` sets (see the plug-in's settings)."""

    directory: str = "provenance"
    workflow_id: str | None = None
    name: str | None = None
    metadata: str | None = None
    crate: bool = True
    svg: bool = True


def _names(value: Any) -> list[str]:
    """A Snakemake file list (a Namedlist, a list, one name or None) as plain strings."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    try:
        return [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value]
    except TypeError:
        return [str(value)]


def _mapping(value: Any) -> dict[str, Any]:
    """Wildcards or resources (Namedlists with names) as a plain mapping."""
    items = getattr(value, "items", None)
    if callable(items):
        try:
            return {str(k): v for k, v in items()}
        except (TypeError, ValueError):
            return {}
    return dict(value) if isinstance(value, dict) else {}


def target_spec(rule: str, wildcards: dict[str, Any]) -> str:
    """How Snakemake names a job on the command line of the process that runs it (``--target-jobs``)."""
    def quoted(value: Any) -> Any:
        return f'"{value}"' if isinstance(value, str) and "," in value else value
    return f"{rule}:" + ",".join(f"{k}={quoted(v)}" for k, v in wildcards.items())


class SnakemakeRecorder:
    """Feeds one Snakemake invocation's log records to a :class:`WorkflowRecorder`."""

    def __init__(self, options: SnakemakeOptions, snakemake_version: str = "",
                 workdir: str | os.PathLike | None = None):
        self.options = options
        workdir = Path(workdir or working_directory()).absolute()
        workflow_id = options.workflow_id or safe_id(workdir.name or "workflow")
        self.recorder = WorkflowRecorder(Path(options.directory).absolute(), workflow_id, name=options.name,
                                         manager=("snakemake", snakemake_version, SNAKEMAKE_URL),
                                         user=getpass.getuser(), root=workdir)
        self._tasks: dict[int, str] = {}  # Snakemake job id → task id
        self._jobs: dict[int, dict[str, Any]] = {}  # what job_info said, for the job's end
        self._last_error = ""
        self._errors: list[str] = []  # reported, not yet tied to a job's failure
        self._interrupted = False
        self._failed_without_job = False
        self._targets: list[dict[str, Any]] = []

    def environment(self) -> dict[str, str]:
        """What Snakemake's environment must hold for runs in its jobs to register."""
        return self.recorder.workflow_identity()

    def handle(self, record: logging.LogRecord) -> None:
        """One log record (called in Snakemake's logging thread)."""
        event = str(getattr(record, "event", "") or "")
        handler = getattr(self, f"_on_{event}", None) if event else None
        if handler is not None:
            handler(record)
            return
        message = str(record.msg) if record.msg is not None else ""
        if any(marker in message for marker in INTERRUPTED):
            self._interrupted = True
        submitted = SLURM_SUBMITTED.search(message)
        if submitted:
            task = self._tasks.get(int(submitted.group(1)))
            if task:
                self.recorder.task_noted(task, {"slurm_log": submitted.group(3)}, executor_job_id=submitted.group(2),
                                         when=record.created)

    def _on_workflow_started(self, record: logging.LogRecord) -> None:
        if getattr(record, "cwd", None):  # the working directory (--directory): data paths are relative to it
            self.recorder.root = Path(record.cwd).absolute()
        facts = {key: getattr(record, key, None) for key in ("snakemake_version", "host", "cmd", "platform",
                                                              "python_version", "config_md5")}
        facts["snakefile"] = getattr(record, "snakefile_main", None) or getattr(record, "snakefile", None)
        facts["snakemake_workflow_id"] = str(getattr(record, "workflow_id", "") or "") or None
        facts["configfiles"] = _names(getattr(record, "configfiles", None)) or None
        if facts["snakefile"]:  # the crate's main workflow (yprov4wfs_bridge.definition)
            facts.update(definition=str(Path(facts["snakefile"]).absolute()), language="snakemake",
                         definition_parts=facts["configfiles"])
        self.recorder.workflow_started({k: v for k, v in facts.items() if v}, when=record.created)

    def _on_job_info(self, record: logging.LogRecord) -> None:
        jobid = getattr(record, "jobid", None)
        if not isinstance(jobid, int):
            return
        rule = str(getattr(record, "rule_name", "") or "job")
        wildcards = {k: str(v) for k, v in _mapping(getattr(record, "wildcards", None)).items()}
        when = record.created
        if jobid in self._tasks:  # the same job again: a retry, a new attempt
            self.recorder.task_started(self._tasks[jobid], host=self._host(record), when=when)
            return
        outputs = _names(getattr(record, "output", None))
        logs = _names(getattr(record, "log", None))
        shellcmd = getattr(record, "shellcmd", None) or ""
        if not outputs and not logs and not shellcmd:  # a target rule (``all``): runs and writes nothing
            self._targets.append({"rule": rule, "input": _names(getattr(record, "input", None))})
            return
        task = safe_id(f"{rule}-{jobid}")
        self._tasks[jobid] = task
        resources = {k: v for k, v in _mapping(getattr(record, "resources", None)).items()
                     if k not in HIDDEN_RESOURCES and isinstance(v, (int, float, str))}
        attributes = {"rule": rule, "snakemake_jobid": jobid, "wildcards": wildcards or None,
                      "threads": getattr(record, "threads", None), "resources": resources or None,
                      "reason": str(getattr(record, "reason", "") or "") or None,
                      "priority": getattr(record, "priority", None), "local": getattr(record, "local", None)}
        self._jobs[jobid] = {"output": outputs, "log": logs, "command": shellcmd, "rule": rule,
                             "benchmark": _names(getattr(record, "benchmark", None))}
        self.recorder.task_submitted(task, name=rule, command=str(shellcmd), attributes=attributes,
                                     markers=[["--target-jobs", target_spec(rule, wildcards)]], when=when)
        self.recorder.task_started(task, host=self._host(record), when=when)
        for path in _names(getattr(record, "input", None)):
            self.recorder.data_used(task, path, when=when)

    def _host(self, record: logging.LogRecord) -> str | None:
        return None if getattr(record, "local", True) is False else os.uname().nodename

    def _generated(self, task: str, jobid: int, when: float, only_existing: bool) -> None:
        files = self._jobs.get(jobid, {})
        for role, key in (("output", "output"), ("log", "log"), ("benchmark", "benchmark")):
            for path in files.get(key, []):
                if not only_existing or (self.recorder.root / path).exists():
                    self.recorder.data_generated(task, path, role=role, when=when)

    def _on_job_finished(self, record: logging.LogRecord) -> None:
        jobid = getattr(record, "job_id", None)
        task = self._tasks.get(jobid) if isinstance(jobid, int) else None
        if task:
            self._generated(task, jobid, record.created, only_existing=False)
            self.recorder.task_finished(task, when=record.created)

    def _on_job_error(self, record: logging.LogRecord) -> None:
        jobid = getattr(record, "jobid", None)
        task = self._tasks.get(jobid) if isinstance(jobid, int) else None
        if not task:
            self._failed_without_job = True
            return
        self._generated(task, jobid, record.created, only_existing=True)  # the logs of a failed job matter
        reason = getattr(record, "rule_msg", None)  # the executor's word (Slurm: the job's state, e.g. CANCELLED)
        detail = " ".join(str(part) for part in (record.msg, reason, self._error_of(jobid)) if part)
        self.recorder.task_failed(task, detail or "failed", when=record.created)

    def _error_of(self, jobid: int) -> str:
        """The error Snakemake reported just before a job's failure: the one naming its command (jobs
        failing together report their errors first, then their failures)."""
        command = self._jobs.get(jobid, {}).get("command") or ""
        rule = self._jobs.get(jobid, {}).get("rule") or ""
        for n, text in enumerate(self._errors):
            if (command and command in text) or (not command and f"rule {rule}" in text):
                return self._errors.pop(n)
        return self._errors.pop(0) if self._errors and not command else ""

    def _on_error(self, record: logging.LogRecord) -> None:
        text = str(record.msg or getattr(record, "exception", "") or "")[:4000]
        self._last_error = text
        self._errors = (self._errors + [text])[-MAX_PENDING_ERRORS:]
        if "KeyboardInterrupt" in text:
            self._interrupted = True
        self._failed_without_job = True

    def close(self) -> Any:
        """The end of the invocation: the workflow's status, then bundle, graph and crate."""
        manifest = self.recorder.manifest
        if manifest is None:  # nothing ran (Snakemake stopped before the workflow started)
            self.recorder.workflow_started(when=None)
            manifest = self.recorder.manifest
        tasks = manifest["tasks"]
        running = any(t["status"] in ("RUNNING", "RETRYING") for t in tasks)
        failed = [t["id"] for t in tasks if t["status"] == "FAILED"]
        if self._interrupted or (running and not failed):
            status, error = "INTERRUPTED", "interrupted (Ctrl-C, a signal, or Snakemake stopped its jobs)"
        elif failed or (self._failed_without_job and not tasks):
            status, error = "FAILED", (f"failed: {', '.join(failed[:10])}" if failed else self._last_error or None)
        else:
            status, error = "FINISHED", None
        if self._targets:
            self.recorder.workflow_noted({"targets": self._targets})
        self.recorder.workflow_ended(status, error)
        return self.recorder.finish(svg=self.options.svg, crate=self.options.crate, metadata=self.options.metadata)


def working_directory(argv: Iterable[str] = sys.argv) -> str:
    """The directory Snakemake will work in: ``--directory``/``-d`` when given, else the current one."""
    args = list(argv)
    for n, arg in enumerate(args):
        if arg in ("-d", "--directory") and n + 1 < len(args):
            return args[n + 1]
        if arg.startswith("--directory="):
            return arg.split("=", 1)[1]
    return os.getcwd()


def is_snakemake_subprocess(argv: Iterable[str] = sys.argv) -> bool:
    """Whether this Snakemake process runs one job for another (a Slurm job step, a ``run:`` block):
    that one records the workflow, this one must not record a second."""
    return any(arg in ("--target-jobs", "--slurm-jobstep", "--mode") or arg.startswith("--target-jobs=")
               for arg in argv)
