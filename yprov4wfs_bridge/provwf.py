"""Workflow manifest → workflow-level PROV-JSON (workflow and task activities, data, agents)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prov.model import PROV_LABEL, PROV_LOCATION, PROV_TYPE, ProvDocument
from prov.serializers.provjson import encode_json_document

from yprov4ml.prov.document import VOCABULARY, declare_standard_prefixes, prov_kind

from .ids import VALID_ID

WORKFLOW_NAMESPACE = "https://w3id.org/yprov4wfs/workflow/"
_AGENT_TYPES = {"Person": "prov:Person", "Organization": "prov:Organization", "SoftwareAgent": "prov:SoftwareAgent"}


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None


def task_activity_id(task_id: str) -> str:
    return f"wf:task/{task_id}"


def _attributes(values: dict[str, Any] | None) -> dict[str, Any]:
    """A record's free attributes (a manager's rule, wildcards, threads...) as ``yprov:`` attributes."""
    return {f"yprov:{key}": value for key, value in (values or {}).items()
            if VALID_ID.match(key) and isinstance(value, (bool, int, float, str))}


def _attempts(doc: ProvDocument, activity: Any, task: dict[str, Any]) -> None:
    """A retried task: each attempt an activity of its own, which informed the task."""
    attempts = task.get("attempts") or []
    if len(attempts) < 2:
        return
    for attempt in attempts:
        attrs = {PROV_TYPE: prov_kind("yprov:TaskAttempt"), PROV_LABEL: f"{task['id']} attempt {attempt['attempt']}",
                 "yprov:attempt": attempt["attempt"], "yprov:status": attempt["status"]}
        attrs.update({f"yprov:{k}": attempt[k] for k in ("error", "host", "executor_job_id") if attempt.get(k)})
        tried = doc.activity(f"{task_activity_id(task['id'])}/attempt-{attempt['attempt']}",
                             _time(attempt.get("start_time")), _time(attempt.get("end_time")), attrs)
        doc.wasInformedBy(activity, tried)


def workflow_document(manifest: dict[str, Any]) -> dict[str, Any]:
    """The PROV-JSON object of one workflow execution."""
    doc = ProvDocument()
    doc.add_namespace("yprov", VOCABULARY)
    doc.add_namespace("wf", f"{WORKFLOW_NAMESPACE}{manifest['id']}/")
    workflow = doc.activity("wf:workflow", _time(manifest["start_time"]), _time(manifest["end_time"]), {
        PROV_TYPE: prov_kind("yprov:WorkflowExecution"), PROV_LABEL: manifest["name"], "yprov:workflow_id": manifest["id"],
        "yprov:status": manifest["status"], **({"yprov:error": manifest["error"]} if manifest.get("error") else {}),
        **_attributes(manifest.get("attributes")),
    })
    agents = {}
    for agent in manifest["agents"]:
        attrs = {PROV_TYPE: prov_kind(_AGENT_TYPES.get(agent["kind"], "prov:Agent")), PROV_LABEL: agent["name"]}
        if agent.get("version"):
            attrs["yprov:version"] = str(agent["version"])
        agents[agent["id"]] = doc.agent(f"wf:agent/{agent['id']}", attrs)
        doc.wasAssociatedWith(workflow, agents[agent["id"]])
    data = {}
    for item in manifest["data"]:
        attrs = {PROV_TYPE: prov_kind("yprov:Data"), PROV_LABEL: item["id"], PROV_LOCATION: item["path"]}
        if item.get("size") is not None:
            attrs["yprov:size_bytes"] = item["size"]
        attrs.update({f"yprov:{k}": item[k] for k in ("sha256", "role", "problem") if item.get(k)})
        data[item["id"]] = doc.entity(f"wf:data/{item['id']}", attrs)
    producer: dict[str, str] = {}
    for order, task in enumerate(manifest["tasks"]):
        attrs = {PROV_TYPE: prov_kind("yprov:Task"), PROV_LABEL: task["id"], "yprov:task_id": task["id"],
                 "yprov:status": task["status"], "yprov:order": order, **_attributes(task.get("attributes"))}
        for key in ("error", "command", "name"):
            if task.get(key) and task[key] != task["id"]:
                attrs[f"yprov:{key}"] = task[key]
        if task.get("submitted_time"):
            attrs["yprov:submitted_time"] = _time(task["submitted_time"])
        if task.get("attempts"):
            attrs["yprov:attempts"] = len(task["attempts"])
            attrs["yprov:retries"] = len(task["attempts"]) - 1
        if task["start_time"] and not task["end_time"]:
            attrs["yprov:incomplete"] = "the task never ended (killed, or end() was not called)"
        activity = doc.activity(task_activity_id(task["id"]), _time(task["start_time"]), _time(task["end_time"]),
                                attrs)
        doc.wasInformedBy(activity, workflow)
        _attempts(doc, activity, task)
        for agent_id in task["agents"]:
            if agent_id in agents:
                doc.wasAssociatedWith(activity, agents[agent_id])
        informed_by = set()
        for data_id in task["inputs"]:
            doc.used(activity, data[data_id], _time(task["start_time"]))
            if data_id in producer and producer[data_id] != task["id"]:
                informed_by.add(producer[data_id])
        known = {t["id"] for t in manifest["tasks"]}
        informed_by.update(d for d in task.get("depends_on", []) if d in known and d != task["id"])
        for upstream in sorted(informed_by):
            doc.wasInformedBy(activity, task_activity_id(upstream))
        for data_id in task["outputs"]:
            doc.wasGeneratedBy(data[data_id], activity, _time(task["end_time"]))
            producer[data_id] = task["id"]
    out = encode_json_document(doc)
    declare_standard_prefixes(out)
    return out
