"""RO-Crate for publication, following the Workflow Run RO-Crate profiles (provenance run crate 0.5).

Built with ro-crate-py. The workflow (its manifest, ``workflow.json``) is the
crate's main ``ComputationalWorkflow``; each task is a ``HowToStep`` whose
tool is a ``SoftwareApplication``; each task execution is a ``CreateAction``
(instrument, inputs as ``object``, outputs as ``result``, start/end, status,
resource usage) driven by a ``ControlAction`` of the ``OrganizeAction`` of the
bridge. The PROV-JSON documents (workflow level, multi-level bundle, every
rank document), metric files and model checkpoints are inside, each linked
``about`` the action it describes; files over ``reference_over_bytes`` are
referenced by URI instead of copied.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from yprov4ml.prov.decode import RankDocument
from yprov4ml.prov.document import VOCABULARY
from yprov4ml.storage.names import safe_part
from yprov4ml.version import __version__

from .runs import document_files

PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
    "wroc": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
WFRUN_TERMS = "https://w3id.org/ro/terms/workflow-run#"
RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
_STATUS = {"FINISHED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
           "RUNNING": "http://schema.org/ActiveActionStatus", "KILLED": "http://schema.org/FailedActionStatus"}
# Run-level totals summed over a task's ranks, with their units (the task's wall time is added to them).
USAGE_FIGURES = {"total_energy_consumed_kwh": "kWh", "total_emissions_kg": "kgCO2eq", "total_cpu_energy_kwh": "kWh",
                 "total_gpu_energy_kwh": "kWh", "total_ram_energy_kwh": "kWh"}


def _iso(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat() if seconds else None


def _ref(entity: Any) -> dict[str, str]:
    return {"@id": entity.id if hasattr(entity, "id") else entity}


def _refs(entities: list[Any]) -> Any:
    """RO-Crate 1.1 compacts a one-element list to its element."""
    refs = [_ref(e) for e in entities]
    return refs[0] if len(refs) == 1 else refs


def _usage(task: dict[str, Any], documents: list[RankDocument]) -> list[dict[str, Any]]:
    """Resource usage of a task execution: its wall time, and energy / emissions summed over its ranks."""
    figures: dict[str, float] = {}
    if task.get("start_time") and task.get("end_time"):
        figures["task_wall_time_s"] = task["end_time"] - task["start_time"]
    for doc in documents:
        for name in USAGE_FIGURES:
            value = doc.run.get(name)
            if isinstance(value, (int, float)):
                figures[name] = figures.get(name, 0.0) + value
    units = {**USAGE_FIGURES, "task_wall_time_s": "s"}
    return [{"@id": f"#usage-{task['id']}-{name}", "@type": "PropertyValue", "name": name, "value": value,
             "propertyID": f"{VOCABULARY}{name}", "unitText": units[name]} for name, value in figures.items()]


@dataclass
class CrateOptions:
    reference_over_bytes: int | None = None  # larger files are referenced, not copied
    include_metrics: bool = True
    include_models: bool = True


@dataclass
class CrateResult:
    path: Path
    copied: list[str] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)


def build_crate(target: Path, workflow_dir: Path, manifest: dict[str, Any], documents: list[RankDocument],
                prov_files: dict[str, Path], gaps: list[str], options: CrateOptions | None = None) -> CrateResult:
    """Write the RO-Crate directory ``target`` (replaced atomically as a whole)."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    options = options or CrateOptions()
    result = CrateResult(target)
    crate = ROCrate(version="1.1")
    crate.metadata.extra_terms.update({"resourceUsage": WFRUN_TERMS + "resourceUsage",
                                       "sha256": WFRUN_TERMS + "sha256"})
    root = crate.root_dataset

    def add(entity_id: str, properties: dict[str, Any]) -> Any:
        return crate.add(ContextEntity(crate, entity_id, properties=properties))

    root["name"] = f"{manifest['name']} — provenance of a workflow execution"
    root["description"] = manifest.get("description") or (
        f"Workflow {manifest['id']} with its ML runs recorded by yprov4ml, as W3C PROV-JSON.")
    root["license"] = _ref(add("https://spdx.org/licenses/CC-BY-4.0", {"@type": "CreativeWork",
                                                                       "name": "Creative Commons Attribution 4.0"}))
    for name, iri in PROFILES.items():  # the profiles are entities of the crate, as the profiles require
        add(iri, {"@type": "CreativeWork", "name": f"{name} profile", "version": iri.rsplit("/", 1)[-1]})
    root["conformsTo"] = [{"@id": p} for p in PROFILES.values()]
    root["datePublished"] = datetime.now(timezone.utc).isoformat()

    def add_file(source: Path, dest: str, properties: dict[str, Any]) -> Any:
        parts = PurePosixPath(dest).parts
        if PurePosixPath(dest).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"crate path {dest!r} would leave the crate")  # a bug, never user input
        size = source.stat().st_size
        props = {"contentSize": str(size), **properties}
        if options.reference_over_bytes is not None and size > options.reference_over_bytes:
            result.referenced.append(str(source))
            return crate.add_file(source.resolve().as_uri(), properties={"name": source.name, **props},
                                  fetch_remote=False, validate_url=False)
        result.copied.append(dest)
        return crate.add_file(source, dest_path=dest, properties=props)

    agents = {a["id"]: add(f"#agent-{a['id']}", {"@type": "Organization" if a["kind"] == "Organization"
                                                  else ("SoftwareApplication" if a["kind"] == "SoftwareAgent"
                                                        else "Person"), "name": a["name"]})
              for a in manifest["agents"]}
    language = add("#yprov4wfs", {"@type": "ComputerLanguage", "name": "yProv4WFs workflow (Python)",
                                  "url": {"@id": "https://github.com/HPCI-Lab/yProv4WFs"}})
    engine = add("#yprov4wfs-bridge", {"@type": "SoftwareApplication", "name": "yprov4wfs_bridge (yprov4ml)",
                                       "softwareVersion": __version__})

    data_files = {}
    for item in manifest["data"]:
        source = Path(item["path"])
        if source.is_file():
            props = {"name": item["id"], "description": f"data item {item['id']}",
                     "encodingFormat": mimetypes.guess_type(source.name)[0] or "application/octet-stream"}
            if item.get("sha256"):
                props["sha256"] = item["sha256"]
            data_files[item["id"]] = add_file(source, f"data/{source.name}", props)
        else:
            data_files[item["id"]] = add(f"#data-{item['id']}", {"@type": "Dataset" if source.is_dir()
                                                                   else "CreativeWork", "name": item["id"],
                                                                   "description": f"{item['path']} (not copied)"})

    tools, steps = {}, {}
    for position, task in enumerate(manifest["tasks"]):
        tools[task["id"]] = add(f"#tool-{task['id']}", {"@type": "SoftwareApplication", "name": task["id"],
                                                         "softwareVersion": manifest.get("version", "1"),
                                                         **({"description": task["command"]}
                                                            if task.get("command") else {})})
        steps[task["id"]] = add(f"#step-{task['id']}", {"@type": "HowToStep", "name": task["id"],
                                                         "position": str(position),
                                                         "workExample": _ref(tools[task["id"]])})
    manifest_path = workflow_dir / "workflow.json"
    workflow = crate.add_file(manifest_path, dest_path="workflow.json", properties={
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
        "name": manifest["name"], "programmingLanguage": _ref(language),
        "step": [_ref(s) for s in steps.values()], "hasPart": [_ref(t) for t in tools.values()],
    })
    crate.mainEntity = workflow
    root["mainEntity"] = _ref(workflow)

    produced = {d for t in manifest["tasks"] for d in t["outputs"]}
    consumed = {d for t in manifest["tasks"] for d in t["inputs"]}
    actions, controls = [], []
    for task in manifest["tasks"]:
        task_docs = [d for d in documents if d.task_id == task["id"]]
        props = {"@type": "CreateAction", "name": f"execution of {task['id']}",
                 "description": f"task {task['id']}: {task['status']}, {len(task_docs)} run document(s)",
                 "instrument": _ref(tools[task["id"]]),
                 "object": _refs([data_files[d] for d in task["inputs"]]),
                 "result": _refs([data_files[d] for d in task["outputs"]]),
                 "agent": _refs([agents[a] for a in task["agents"] if a in agents]),
                 "actionStatus": {"@id": _STATUS.get(task["status"], "http://schema.org/PotentialActionStatus")}}
        if task.get("start_time"):
            props["startTime"] = _iso(task["start_time"])
        if task.get("end_time"):
            props["endTime"] = _iso(task["end_time"])
        if task.get("error"):
            props["error"] = task["error"]
        usage = _usage(task, task_docs)
        for value in usage:
            add(value.pop("@id"), value)
        if usage:
            props["resourceUsage"] = _refs([f"#usage-{task['id']}-{u['name']}" for u in usage])
        action = add(f"#action-{task['id']}", props)
        actions.append(action)
        controls.append(add(f"#control-{task['id']}", {"@type": "ControlAction", "name": f"run {task['id']}",
                                                        "instrument": _ref(steps[task["id"]]),
                                                        "object": _ref(action)}))

        for doc in task_docs:
            run_dir = doc.path.parent.resolve()
            base = f"runs/{task['id']}/{safe_part(doc.run_id)}"  # a run id read from a file names no path
            add_file(doc.path, f"{base}/{doc.path.name}", {
                "name": f"PROV-JSON of run {doc.run_id} rank {doc.rank}", "encodingFormat": "application/json",
                "conformsTo": {"@id": "https://www.w3.org/submissions/prov-json/"}, "about": _ref(action)})
            for kind, location, source in document_files(doc):
                wanted = (kind == "yprov:MetricSeries" and options.include_metrics) or \
                    (kind == "yprov:ModelVersion" and options.include_models)
                if wanted and source is not None and source.is_file():  # outside locations are gaps already
                    add_file(source, f"{base}/{source.relative_to(run_dir).as_posix()}", {
                        "name": location, "about": _ref(action),
                        "encodingFormat": "application/x-yprov4ml-metric" if kind == "yprov:MetricSeries"
                        else "application/octet-stream"})

    run_props = {"@type": "CreateAction", "name": f"execution of workflow {manifest['id']}",
                 "instrument": _ref(workflow),
                 "description": f"workflow {manifest['id']}: {manifest['status']}",
                 "object": _refs([data_files[d] for d in data_files if d not in produced and d in consumed]),
                 "result": _refs([data_files[d] for d in data_files if d in produced]),
                 "agent": _refs(list(agents.values())),
                 "actionStatus": {"@id": _STATUS.get(manifest["status"], "http://schema.org/PotentialActionStatus")}}
    if manifest.get("start_time"):
        run_props["startTime"] = _iso(manifest["start_time"])
    if manifest.get("end_time"):
        run_props["endTime"] = _iso(manifest["end_time"])
    if gaps:
        run_props["description"] = "Recorded gaps: " + "; ".join(gaps)
    workflow_run = add("#workflow-run", run_props)
    add("#organize", {"@type": "OrganizeAction", "name": "yprov4wfs_bridge orchestration",
                      "instrument": _ref(engine), "object": _refs(controls),
                      "result": _ref(workflow_run), **({"startTime": _iso(manifest["start_time"])}
                                                       if manifest.get("start_time") else {})})
    for name, path in prov_files.items():
        add_file(path, f"provenance/{path.name}", {"name": name, "encodingFormat": "application/json",
                                                   "conformsTo": {"@id": "https://www.w3.org/submissions/prov-json/"},
                                                   "about": _refs([workflow_run, *actions])})
    root["mentions"] = _refs([workflow_run, *actions])
    root["author"] = _refs(list(agents.values()))

    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    crate.write(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.replace(target)
    return result


# ------------------------------------------------------------------------------ validation

@dataclass
class CrateReport:
    passed: bool
    severity: str
    issues: list[str]


def default_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "yprov4wfs" / "rocrate-validator-http"


def seed_validator_cache(cache_path: Path) -> None:
    """Put the RO-Crate 1.1 JSON-LD context (shipped with the bridge) in the validator's HTTP cache.

    Offline, roc-validator serves remote JSON-LD contexts from a requests-cache
    SQLite cache only. The copy under ``data/`` is the 1.1 context itself,
    served under its own URL (never the 1.3 context under the 1.1 URL).
    """
    import requests
    from requests_cache import CachedSession
    from urllib3.response import HTTPResponse

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    session = CachedSession(cache_name=str(cache_path), backend="sqlite", expire_after=-1)
    if session.cache.contains(url=RO_CRATE_CONTEXT):
        return
    body = (Path(__file__).parent / "data" / "ro-crate-1.1-context.jsonld").read_bytes()
    if json.loads(body).get("@id") != RO_CRATE_CONTEXT:
        raise RuntimeError("the shipped RO-Crate context is not the 1.1 context")
    headers = {"Content-Type": "application/ld+json"}
    response = requests.Response()
    response.status_code, response._content, response.url, response.encoding = 200, body, RO_CRATE_CONTEXT, "utf-8"
    response.headers.update(headers)
    response.request = requests.Request("GET", RO_CRATE_CONTEXT).prepare()
    response.raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, preload_content=False,
                                request_url=RO_CRATE_CONTEXT)
    session.cache.save_response(response)
    session.close()


def validate_crate(path: Path, severity: str = "REQUIRED", profile: str = "provenance-run-crate-0.5",
                   cache_path: Path | None = None) -> CrateReport:
    """roc-validator, offline, against ``profile`` at ``severity`` (REQUIRED, RECOMMENDED, OPTIONAL)."""
    from rocrate_validator import services
    from rocrate_validator.models.severity import Severity

    cache_path = cache_path or default_cache_path()
    seed_validator_cache(cache_path)
    result = services.validate({
        "rocrate_uri": str(Path(path).resolve()), "profile_identifier": profile,
        "requirement_severity": severity.upper(), "offline": True, "cache_path": str(cache_path),
        "skip_availability_check": True,
    })
    level = Severity[severity.upper()]
    issues = sorted({f"[{i.severity.name}] {i.check.requirement.name}: {i.message}"
                     for i in result.get_issues(min_severity=level)})
    return CrateReport(result.passed(level), severity.upper(), issues)
