"""The event journal of a workflow recorded from a manager's events: ``events.jsonl``, replayed into a manifest.

Each event is one JSON line appended with a single ``O_APPEND`` write, so a
workflow manager killed at any moment leaves every event before it on disk,
and ``yprov4wfs-bridge build`` rebuilds the record from them. Replaying is
the only way a manifest is made from events: the recorder applies the same
``apply`` to its in-memory manifest as it appends each line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from .errors import WorkflowError
from .ids import VALID_ID
from .layout import EVENTS

MAX_LINE_BYTES = 1 << 20  # a longer line is damage, not an event: it is skipped unread
MAX_JOURNAL_BYTES = 1 << 30
MAX_TIME = 1e11  # seconds since 1970: the year 5138


def empty_manifest(workflow: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a workflow that has only just started."""
    return {"id": workflow["id"], "execution_id": workflow.get("execution_id", ""), "name": workflow.get("name", ""),
            "description": workflow.get("description", ""), "start_time": None, "end_time": None,
            "status": "PENDING", "error": None, "agents": list(workflow.get("agents", [])), "tasks": [], "data": [],
            "attributes": dict(workflow.get("attributes", {})), "root": workflow.get("root"), "claims": []}


def new_task(task_id: str, event: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    return {"id": task_id, "name": event.get("name") or task_id, "inputs": [], "outputs": [], "agents": agents,
            "command": event.get("command") or "", "start_time": None, "end_time": None, "status": "PENDING",
            "error": None, "attached": [], "submitted_time": event["time"], "attempts": [],
            "depends_on": list(event.get("depends_on", [])), "attributes": dict(event.get("attributes", {})),
            "markers": [m for m in event.get("markers", []) if isinstance(m, list) and
                        all(isinstance(a, str) for a in m)]}


class Replay:
    """Events applied in order to one manifest; what cannot be applied is said in ``problems``."""

    def __init__(self) -> None:
        self.manifest: dict[str, Any] | None = None
        self.problems: list[str] = []
        self._tasks: dict[str, dict[str, Any]] = {}
        self._items: dict[str, dict[str, Any]] = {}
        # where a try runs, said by its worker before the manager said it started (a busy machine): kept for
        # the attempt that starts next
        self._noted: dict[str, dict[str, Any]] = {}

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "workflow_started":
            self.manifest = empty_manifest(event["workflow"])
            self.manifest["start_time"], self.manifest["status"] = event["time"], "RUNNING"
            self._tasks, self._items, self._noted = {}, {}, {}
            return
        if self.manifest is None:
            self.problems.append(f"{kind} before workflow_started: skipped")
            return
        if event.get("execution_id", self.manifest["execution_id"]) != self.manifest["execution_id"]:
            return  # a late line of an earlier execution written into the same directory
        handler = getattr(self, f"_{kind}") if kind in EVENT_KINDS else None
        if handler is None:
            self.problems.append(f"unknown event {str(kind)[:40]!r}: skipped")
            return
        handler(event)

    def _task(self, event: dict[str, Any]) -> dict[str, Any] | None:
        task = self._tasks.get(event.get("task", ""))
        if task is None:
            self.problems.append(f"{event['event']} for an unknown task {str(event.get('task'))[:80]!r}: skipped")
        return task

    def _task_submitted(self, event: dict[str, Any]) -> None:
        if event["task"] in self._tasks:
            return  # a manager that says it twice (a resubmission): one task
        task = new_task(event["task"], event, [a["id"] for a in self.manifest["agents"]])
        self._tasks[task["id"]] = task
        self.manifest["tasks"].append(task)

    def _task_started(self, event: dict[str, Any]) -> None:
        task = self._task(event)
        if task is None:
            return
        attempt = {"attempt": len(task["attempts"]) + 1, "start_time": event["time"], "end_time": None,
                   "status": "RUNNING", "error": None}
        attempt.update(self._noted.pop(task["id"], {}))
        attempt.update({k: event[k] for k in ("host", "executor_job_id") if event.get(k)})
        task["attempts"].append(attempt)
        if task["start_time"] is None:
            task["start_time"] = event["time"]
        task["end_time"], task["status"], task["error"] = None, "RUNNING", None

    def _end_attempt(self, task: dict[str, Any], event: dict[str, Any], status: str, error: str | None) -> None:
        if not task["attempts"] or task["attempts"][-1]["end_time"] is not None:
            self._task_started({**event, "time": task["start_time"] or event["time"]})  # ended unseen to start
        attempt = task["attempts"][-1]
        attempt.update({"end_time": event["time"], "status": status, "error": error})
        task["end_time"], task["status"], task["error"] = event["time"], status, error

    def _task_finished(self, event: dict[str, Any]) -> None:
        task = self._task(event)
        if task is not None:
            self._end_attempt(task, event, "FINISHED", None)

    def _task_failed(self, event: dict[str, Any]) -> None:
        task = self._task(event)
        if task is not None:
            self._end_attempt(task, event, "FAILED", str(event.get("error") or "failed"))
            if event.get("will_retry"):
                task["status"], task["end_time"] = "RETRYING", None

    def _task_not_run(self, event: dict[str, Any]) -> None:
        task = self._task(event)
        if task is not None:
            task["status"], task["error"] = "NOT_RUN", str(event.get("error") or "not run")

    def _task_noted(self, event: dict[str, Any]) -> None:
        task = self._task(event)
        if task is not None:
            task["attributes"].update(event.get("attributes") or {})
            where = {k: event[k] for k in ("executor_job_id", "host") if event.get(k)}
            last = task["attempts"][-1] if task["attempts"] else None
            if last is not None and (last["end_time"] is None or event["time"] <= last["end_time"]):
                last.update(where)  # said during that try
            else:  # the worker spoke before the manager said this try started
                self._noted[task["id"]] = where

    def _add_data(self, event: dict[str, Any], role: str) -> None:
        task = self._task(event)
        if task is None:
            return
        item = self._items.get(event["id"])
        if item is None:
            item = {"id": event["id"], "path": event["path"], "size": None, "sha256": None, "generated_by": None,
                    "time": event["time"], "role": event.get("role", "data")}
            self._items[item["id"]] = item
            self.manifest["data"].append(item)
        elif item["path"] != event["path"]:
            self.problems.append(f"data id {item['id']!r} names {item['path']} and {event['path']}: the second "
                                 "was not recorded")
            return
        if role == "output":
            item["generated_by"], item["role"] = task["id"], event.get("role", item["role"])
            if item["id"] not in task["outputs"]:
                task["outputs"].append(item["id"])
        elif item["id"] not in task["inputs"] and item["generated_by"] != task["id"]:
            task["inputs"].append(item["id"])

    def _data_used(self, event: dict[str, Any]) -> None:
        self._add_data(event, "input")

    def _data_generated(self, event: dict[str, Any]) -> None:
        self._add_data(event, "output")

    def _data_hashed(self, event: dict[str, Any]) -> None:
        item = self._items.get(event.get("id", ""))
        if item is None:
            self.problems.append(f"data_hashed for unknown data {str(event.get('id'))[:80]!r}: skipped")
            return
        item.update({k: event.get(k) for k in ("size", "sha256")})
        if event.get("problem"):
            item["problem"] = event["problem"]

    def _workflow_noted(self, event: dict[str, Any]) -> None:
        self.manifest["attributes"].update(event.get("attributes") or {})

    def _run_claimed(self, event: dict[str, Any]) -> None:
        self.manifest["claims"].append({k: event.get(k) for k in ("run_id", "rank", "task", "how")})

    def _run_unclaimed(self, event: dict[str, Any]) -> None:
        self.manifest["claims"].append({k: event.get(k) for k in ("run_id", "rank", "why")} | {"task": None})

    def _workflow_ended(self, event: dict[str, Any]) -> None:
        manifest = self.manifest
        manifest["end_time"], manifest["status"], manifest["error"] = event["time"], event["status"], event.get("error")
        for task in manifest["tasks"]:  # what was still going when the workflow ended was cut short
            if task["status"] in ("RUNNING", "RETRYING"):
                cut = {"time": event["time"], "task": task["id"], "event": "task_failed"}
                self._end_attempt(task, cut, "INTERRUPTED", f"the workflow ended ({event['status']}) while it ran")
            elif task["status"] == "PENDING":
                task["status"], task["error"] = "NOT_RUN", f"the workflow ended ({event['status']}) before it ran"


_REQUIRED = {"event": str, "time": (int, float)}
EVENT_KINDS = frozenset({"workflow_started", "workflow_noted", "workflow_ended", "task_submitted", "task_started",
                         "task_noted", "task_finished", "task_failed", "task_not_run", "data_used", "data_generated",
                         "data_hashed", "run_claimed", "run_unclaimed"})
_OPTIONAL = {"host": str, "executor_job_id": str, "error": str, "name": str, "command": str, "role": str,
             "status": str, "sha256": str, "problem": str, "how": str, "why": str, "size": int, "will_retry": bool,
             "attributes": dict, "depends_on": list, "markers": list, "workflow": dict}
_TASK_EVENTS = {"task_submitted", "task_started", "task_finished", "task_failed", "task_not_run", "task_noted",
                "data_used", "data_generated"}


def _workflow_problem(workflow: Any) -> str | None:
    if not isinstance(workflow, dict) or not (isinstance(workflow.get("id"), str) and VALID_ID.match(workflow["id"])):
        return "its workflow id is missing or unsafe"
    for key in ("name", "description", "execution_id", "root"):
        if workflow.get(key) is not None and not isinstance(workflow[key], str):
            return f"the workflow's {key} is not text"
    if not isinstance(workflow.get("attributes", {}), dict):
        return "the workflow's attributes are not an object"
    agents = workflow.get("agents", [])
    if not isinstance(agents, list) or not all(
            isinstance(a, dict) and isinstance(a.get("id"), str) and VALID_ID.match(a["id"]) and
            isinstance(a.get("name"), str) and isinstance(a.get("kind"), str) for a in agents):
        return "the workflow's agents are malformed"
    return None


def event_problem(event: Any) -> str | None:
    """What makes a decoded line unusable as an event, or None."""
    if not isinstance(event, dict):
        return "not an object"
    for key, kind in _REQUIRED.items():
        if not isinstance(event.get(key), kind) or isinstance(event.get(key), bool):
            return f"{key!r} is missing or of the wrong type"
    if event["event"] not in EVENT_KINDS:
        return f"unknown event {event['event'][:40]!r}"
    if not 0 < event["time"] < MAX_TIME:  # NaN and infinities fail this too
        return "its time is not a plausible Unix time"
    if event["event"] == "workflow_ended" and event.get("status") not in ("FINISHED", "FAILED", "INTERRUPTED"):
        return "its status is not FINISHED, FAILED or INTERRUPTED"
    if not all(isinstance(d, str) for d in event.get("depends_on") or []):
        return "'depends_on' is not a list of task ids"
    for key, kind in _OPTIONAL.items():  # what a record keeps is of the type it is written with
        if event.get(key) is not None and (not isinstance(event[key], kind) or
                                           (kind is int and isinstance(event[key], bool))):
            return f"{key!r} is not a {kind.__name__}"
    if event["event"] in _TASK_EVENTS and not (isinstance(event.get("task"), str) and VALID_ID.match(event["task"])):
        return "its task id is missing or unsafe"
    if event["event"] in ("data_used", "data_generated", "data_hashed"):
        if not (isinstance(event.get("id"), str) and VALID_ID.match(event["id"])):
            return "its data id is missing or unsafe"
        if event["event"] != "data_hashed" and not (isinstance(event.get("path"), str) and
                                                     os.path.isabs(event["path"])):
            return "its path is missing or not absolute"
    if event["event"] == "workflow_started":
        return _workflow_problem(event.get("workflow"))
    if event["event"] in ("run_claimed", "run_unclaimed"):
        if not (isinstance(event.get("run_id"), str) and isinstance(event.get("rank"), int)):
            return "its run or rank is malformed"
        if event["event"] == "run_claimed" and not (isinstance(event.get("task"), str) and
                                                    VALID_ID.match(event["task"])):
            return "its task id is missing or unsafe"
    return None


def read_events(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The events of a journal, in order, and what was skipped (damaged lines) said plainly."""
    size = path.stat().st_size
    if size > MAX_JOURNAL_BYTES:
        raise WorkflowError(f"{path} is {size} bytes, over the {MAX_JOURNAL_BYTES} a journal may hold; "
                            "it is not a journal this bridge wrote")
    events, problems = [], []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if len(raw) > MAX_LINE_BYTES:
                problems.append(f"{path.name} line {number}: {len(raw)} bytes, skipped")
                continue
            try:
                event = json.loads(raw)
            except (ValueError, RecursionError):
                if raw.endswith(b"\n"):  # a torn last line is a kill mid-write: not worth a word
                    problems.append(f"{path.name} line {number}: not JSON, skipped")
                continue
            problem = event_problem(event)
            if problem:
                problems.append(f"{path.name} line {number}: {problem}, skipped")
                continue
            events.append(event)
    return events, problems


def replay(events: Iterable[dict[str, Any]]) -> Replay:
    """The manifest the events describe (the last execution's, when the journal holds several)."""
    state = Replay()
    for event in events:
        state.apply(event)
    return state


class JournalWriter:
    """Appends events to ``events.jsonl``: one write per event, no lock between processes needed."""

    def __init__(self, directory: Path):
        self.path = directory / EVENTS
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, event: dict[str, Any]) -> str:
        """Write the event as one line; returns its JSON text (what a replay of the journal will read)."""
        text = json.dumps(event, default=str)
        os.write(self._fd, (text + "\n").encode("utf-8"))
        return text

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
