"""Workflow manifest → workflow-level PROV-JSON (workflow and task activities, data, agents)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prov.model import PROV_LABEL, PROV_LOCATION, PROV_TYPE, ProvDocument
from prov.serializers.provjson import encode_json_document

from yprov4ml.prov.document import VOCABULARY, declare_standard_prefixes, prov_kind

WORKFLOW_NAMESPACE = "https://w3id.org/yprov4wfs/workflow/"
_AGENT_TYPES = {"Person": "prov:Person", "Organization": "prov:Organization", "SoftwareAgent": "prov:SoftwareAgent"}


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None


def task_activity_id(task_id: str) -> str:
    return f"wf:task/{task_id}"


def workflow_document(manifest: dict[str, Any]) -> dict[str, Any]:
    """The PROV-JSON object of one workflow execution."""
    doc = ProvDocument()
    doc.add_namespace("yprov", VOCABULARY)
    doc.add_namespace("wf", f"{WORKFLOW_NAMESPACE}{manifest['id']}/")
    workflow = doc.activity("wf:workflow", _time(manifest["start_time"]), _time(manifest["end_time"]), {
        PROV_TYPE: prov_kind("yprov:WorkflowExecution"), PROV_LABEL: manifest["name"], "yprov:workflow_id": manifest["id"],
        "yprov:status": manifest["status"], **({"yprov:error": manifest["error"]} if manifest.get("error") else {}),
    })
    agents = {}
    for agent in manifest["agents"]:
        agents[agent["id"]] = doc.agent(f"wf:agent/{agent['id']}", {
            PROV_TYPE: prov_kind(_AGENT_TYPES.get(agent["kind"], "prov:Agent")), PROV_LABEL: agent["name"]})
        doc.wasAssociatedWith(workflow, agents[agent["id"]])
    data = {}
    for item in manifest["data"]:
        attrs = {PROV_TYPE: prov_kind("yprov:Data"), PROV_LABEL: item["id"], PROV_LOCATION: item["path"]}
        if item.get("size") is not None:
            attrs["yprov:size_bytes"] = item["size"]
        if item.get("sha256"):
            attrs["yprov:sha256"] = item["sha256"]
        data[item["id"]] = doc.entity(f"wf:data/{item['id']}", attrs)
    producer: dict[str, str] = {}
    for order, task in enumerate(manifest["tasks"]):
        attrs = {PROV_TYPE: prov_kind("yprov:Task"), PROV_LABEL: task["id"], "yprov:task_id": task["id"],
                 "yprov:status": task["status"], "yprov:order": order}
        if task.get("error"):
            attrs["yprov:error"] = task["error"]
        if task.get("command"):
            attrs["yprov:command"] = task["command"]
        if task["start_time"] and not task["end_time"]:
            attrs["yprov:incomplete"] = "the task never ended (killed, or end() was not called)"
        activity = doc.activity(task_activity_id(task["id"]), _time(task["start_time"]), _time(task["end_time"]),
                                attrs)
        doc.wasInformedBy(activity, workflow)
        for agent_id in task["agents"]:
            if agent_id in agents:
                doc.wasAssociatedWith(activity, agents[agent_id])
        for data_id in task["inputs"]:
            doc.used(activity, data[data_id], _time(task["start_time"]))
            if data_id in producer and producer[data_id] != task["id"]:
                doc.wasInformedBy(activity, task_activity_id(producer[data_id]))
        for data_id in task["outputs"]:
            doc.wasGeneratedBy(data[data_id], activity, _time(task["end_time"]))
            producer[data_id] = task["id"]
    out = encode_json_document(doc)
    declare_standard_prefixes(out)
    return out
