"""RO-Crate for publication, following the Workflow Run RO-Crate profiles (provenance run crate 0.5).

Built with ro-crate-py. The workflow (its manifest, ``workflow.json``) is the
crate's main ``ComputationalWorkflow``; each task is a ``HowToStep`` whose
tool is a ``SoftwareApplication``; each task execution is a ``CreateAction``
(instrument, inputs as ``object``, outputs as ``result``, start/end, status,
resource usage) driven by a ``ControlAction`` of the ``OrganizeAction`` of the
bridge. The PROV-JSON documents (workflow level, multi-level bundle, every
rank document), metric files and model checkpoints are inside, each linked
``about`` the action it describes; files over ``reference_over_bytes`` are
referenced by URI instead of copied. With publication metadata (authors,
license, publisher, version, url) the crate is clean at RECOMMENDED for
provenance-run-crate-0.5 and workflow-ro-crate-1.0 (see docs/publish.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from yprov4ml.collectors.energy import summed_totals
from yprov4ml.prov.decode import RankDocument, document_files
from yprov4ml.prov.document import VOCABULARY
from yprov4ml.publish.card import CARD
from yprov4ml.publish.crate_check import CrateReport, validate_crate
from yprov4ml.publish.crate_kit import PROV_JSON, CrateKit, action_record, action_status, iso_time, ref, refs
from yprov4ml.publish.metadata import PublicationMetadata
from yprov4ml.storage.names import safe_part
from yprov4ml.version import __version__

from .definition import workflow_definition
from .provwf import WORKFLOW_NAMESPACE

__all__ = ["CrateOptions", "CrateResult", "CrateReport", "build_crate", "validate_crate"]
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
# Run-level totals summed over a task's ranks, with their units: text, and the UN/CEFACT code the
# Provenance Run Crate profile asks for (KWH kilowatt hour, KGM kilogram, SEC second).
USAGE_FIGURES = {"total_energy_consumed_kwh": ("kWh", "KWH"), "total_emissions_kg": ("kgCO2eq", "KGM"),
                 "total_cpu_energy_kwh": ("kWh", "KWH"), "total_gpu_energy_kwh": ("kWh", "KWH"),
                 "total_ram_energy_kwh": ("kWh", "KWH")}
UNECE = "https://unece.org/trade/uncefact/cl-recommendations#"


def _usage(task: dict[str, Any], documents: list[RankDocument]) -> list[dict[str, Any]]:
    """Resource usage of a task execution: its wall time, and energy / emissions summed over its ranks."""
    figures: dict[str, float] = {}
    if task.get("start_time") and task.get("end_time"):
        figures["task_wall_time_s"] = task["end_time"] - task["start_time"]
    figures.update(summed_totals(doc.run for doc in documents))
    units = {**USAGE_FIGURES, "task_wall_time_s": ("s", "SEC")}
    return [{"@id": f"#usage-{task['id']}-{name}", "@type": "PropertyValue", "name": name, "value": value,
             "propertyID": f"{VOCABULARY}{name}", "unitText": units[name][0], "unitCode": UNECE + units[name][1]}
            for name, value in figures.items()]


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


def _readme(title: str, manifest: dict[str, Any], documents: list[RankDocument], gaps: list[str]) -> str:
    counts: dict[str, int] = {}
    for task in manifest["tasks"]:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    ran = ", ".join(f"{n} {status.lower().replace('_', ' ')}" for status, n in sorted(counts.items())) or "none"
    engines = [f"{a['name']} {a.get('version') or ''}".strip() for a in manifest["agents"]
               if a["kind"] == "SoftwareAgent"]
    lines = [f"# {title}", "", *([manifest["description"], ""] if manifest.get("description") else []),
             f"Provenance of one execution of workflow `{manifest['name']}` (id `{manifest['id']}`): status "
             f"**{manifest['status']}**" + (f" ({manifest['error']})" if manifest.get("error") else "") +
             f"; {len(manifest['tasks'])} task(s): {ran}" + (f"; run by {', '.join(engines)}" if engines else "") +
             ". Recorded by yprov4wfs_bridge and yprov4ml as W3C PROV-JSON and described here as a Provenance Run "
             "Crate.", "",
             "| task | status | inputs | outputs | runs |", "|---|---|---|---|---|"]
    for task in manifest["tasks"]:
        runs = sorted({d.run_id for d in documents if d.task_id == task["id"]})
        lines.append(f"| {task['id']} | {task['status']} | {', '.join(task['inputs']) or '—'} | "
                     f"{', '.join(task['outputs']) or '—'} | {', '.join(runs) or '—'} |")
    lines += ["", "* `workflow/` — the workflow definition the manager ran, when it named one; `graph.svg` its "
              "diagram, with the runs.",
              "* `workflow.json` — the bridge's record of the workflow (its tasks, attempts and data).",
              "* `provenance/` — the workflow-level PROV-JSON and the multi-level bundle (every rank of every run).",
              "* `runs/<task>/<run>/` — each run's rank documents, metric files and model versions.",
              "* `data/` — the workflow's data items."]
    if gaps:
        lines += ["", "## Gaps", "", *[f"* {g}" for g in gaps]]
    return "\n".join(lines) + "\n"


def build_crate(target: Path, workflow_dir: Path, manifest: dict[str, Any], documents: list[RankDocument],
                prov_files: dict[str, Path], gaps: list[str], options: CrateOptions | None = None,
                metadata: PublicationMetadata | None = None, picture: Path | None = None) -> CrateResult:
    """Write the RO-Crate directory ``target`` (replaced atomically as a whole); ``picture``, the graph drawn
    of the workflow and its runs, is the main workflow's diagram."""
    options = options or CrateOptions()
    metadata = metadata or PublicationMetadata()
    kit = CrateKit(f"{metadata.name or manifest['name']} — provenance of a workflow execution",
                   metadata.description or manifest.get("description") or
                   f"Workflow {manifest['id']} with its ML runs recorded by yprov4ml, as W3C PROV-JSON.",
                   ["process", "workflow", "provenance", "wroc"])
    authors = kit.apply_metadata(metadata)
    namespace = f"{WORKFLOW_NAMESPACE}{manifest['id']}/"
    version = metadata.version or str(manifest.get("version", "1"))

    def add_file(source: Path, dest: str, properties: dict[str, Any]) -> Any:
        return kit.add_file(source, dest, properties, options.reference_over_bytes)

    by_name = {a.name: entity for a, entity in zip(metadata.authors, authors)}
    agents = {a["id"]: by_name.get(a["name"]) or _agent(kit, a, metadata) for a in manifest["agents"]}
    # The actions' agents are the people and organisations; a workflow manager is the engine that ran them.
    people = {k: v for k, v in agents.items() if v.type in ("Person", "Organization")}
    managers = [agents[a["id"]] for a in manifest["agents"] if a["kind"] == "SoftwareAgent"]
    engine = managers[0] if managers else kit.yprov4ml()  # who orchestrated: the manager, else the bridge

    data_files, taken = {}, set()
    for item in manifest["data"]:
        source = Path(item["path"])
        outside = _outside_root(source, manifest.get("root"))
        if source.is_file() and not outside:
            props = {"name": item["id"], "description": f"data item {item['id']}" +
                     (f" ({item['role']})" if item.get("role") not in (None, "data", "output") else "")}
            if item.get("sha256"):
                props["sha256"] = item["sha256"]
            dest = f"data/{source.name}" if source.name not in taken else f"data/{item['id']}/{source.name}"
            taken.add(source.name)
            data_files[item["id"]] = add_file(source, dest, props)
        else:
            why = outside or "not copied"
            data_files[item["id"]] = kit.add(f"#data-{item['id']}", {"@type": "Dataset" if source.is_dir()
                                                                       else "CreativeWork", "name": item["id"],
                                                                       "description": f"{item['path']} ({why})"})

    tools, steps = {}, {}
    for position, task in enumerate(manifest["tasks"]):
        tools[task["id"]] = kit.software(f"{namespace}tool/{task['id']}", task["id"], version, metadata.url,
                                         **({"description": task["command"]} if task.get("command") else {}))
        steps[task["id"]] = kit.add(f"#step-{task['id']}", {"@type": "HowToStep", "name": task["id"],
                                                             "position": str(position),
                                                             "workExample": ref(tools[task["id"]])})
    main_props = {
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
        "name": metadata.name or manifest["name"], "version": version, "conformsTo": {"@id": BIOSCHEMAS_WORKFLOW},
        "step": [ref(s) for s in steps.values()],
        **({"url": metadata.url} if metadata.url else {}),
        **({"creator": refs(authors)} if authors else {}),
        **({"dateCreated": iso_time(manifest["start_time"])} if manifest.get("start_time") else {}),
    }
    definition = workflow_definition(manifest)
    record_props = {"name": "workflow record (yprov4wfs_bridge)", "encodingFormat": "application/json",
                    "description": "the workflow's tasks, attempts and data as the bridge recorded them"}
    if definition:  # the workflow is what the manager ran; the bridge's record is data about its execution
        language = kit.add(definition.language.pop("@id"), {"@type": "ComputerLanguage", **definition.language})
        parts = [add_file(path, dest, {"name": PurePosixPath(dest).name, "description": "a file the workflow "
                                       "includes (a step's document, rules, a script, a configuration)"})
                 for path, dest in definition.parts]
        workflow = kit.add_file(definition.main, definition.main_dest, {
            **main_props, "programmingLanguage": ref(language), "hasPart": [ref(t) for t in tools.values()]})
        for part in parts:  # not in the workflow's hasPart: the profile keeps that for the tools actions ran
            part["isPartOf"] = ref(workflow)
        record = kit.add_file(workflow_dir / "workflow.json", "workflow.json", record_props)
    else:  # a workflow written with the bridge's Python API: its record is the only definition there is
        language = kit.add("#yprov4wfs", {"@type": "ComputerLanguage", "name": "yProv4WFs workflow (Python)",
                                          "url": {"@id": "https://github.com/HPCI-Lab/yProv4WFs"},
                                          "version": __version__})
        workflow = kit.add_file(workflow_dir / "workflow.json", "workflow.json", {  # always inside: WROC wants it
            **main_props, "programmingLanguage": ref(language), "encodingFormat": "application/json",
            "hasPart": [ref(t) for t in tools.values()]})
        record = workflow
    if picture is not None and picture.is_file():
        diagram = kit.add_file(picture, picture.name, {"@type": ["File", "ImageObject"],
                                                       "name": f"diagram of {manifest['name']} and its runs",
                                                       "about": ref(workflow)})
        workflow["image"] = ref(diagram)
    kit.add(BIOSCHEMAS_WORKFLOW, {"@type": "CreativeWork", "name": "Bioschemas ComputationalWorkflow profile",
                                  "version": "1.0-RELEASE"})
    kit.crate.mainEntity = workflow
    kit.root["mainEntity"] = ref(workflow)

    produced = {d for t in manifest["tasks"] for d in t["outputs"]}
    consumed = {d for t in manifest["tasks"] for d in t["inputs"]}
    actions, controls = [], []
    for task in manifest["tasks"]:
        task_docs = [d for d in documents if d.task_id == task["id"]]
        props = {"@type": "CreateAction", "name": f"execution of {task['id']}",
                 "description": f"task {task['id']}: {task['status']}, {len(task_docs)} run document(s)",
                 "instrument": ref(tools[task["id"]]),
                 "object": refs([data_files[d] for d in task["inputs"]]),
                 "result": refs([data_files[d] for d in task["outputs"]]),
                 "agent": refs([people[a] for a in task["agents"] if a in people])}
        props.update(_record(task))
        usage = _usage(task, task_docs)
        for value in usage:
            kit.add(value.pop("@id"), value)
        if usage:
            props["resourceUsage"] = refs([f"#usage-{task['id']}-{u['name']}" for u in usage])
        action = kit.add(f"#action-{task['id']}", props)
        actions.append(action)
        controls.append(kit.add(f"#control-{task['id']}", {"@type": "ControlAction", "name": f"run {task['id']}",
                                                            "instrument": ref(steps[task["id"]]),
                                                            "object": ref(action),
                                                            **action_record(None, None, task["status"],
                                                                            task.get("error"))}))

        for doc in task_docs:
            run_dir = doc.path.parent.resolve()
            base = f"runs/{task['id']}/{safe_part(doc.run_id)}"  # a run id read from a file names no path
            add_file(doc.path, f"{base}/{doc.path.name}", {
                "name": f"PROV-JSON of run {doc.run_id} rank {doc.rank}", "encodingFormat": "application/json",
                "conformsTo": {"@id": PROV_JSON}, "about": ref(action)})
            card = doc.path.parent / CARD
            if doc.rank == 0 and card.is_file() and not card.is_symlink():
                add_file(card, f"{base}/{CARD}", {"name": f"model card of run {doc.run_id}", "about": ref(action)})
            for kind, location, source in document_files(doc):
                wanted = (kind == "yprov:MetricSeries" and options.include_metrics) or \
                    (kind == "yprov:ModelVersion" and options.include_models)
                if wanted and source is not None and source.is_file():  # outside locations are gaps already
                    add_file(source, f"{base}/{source.relative_to(run_dir).as_posix()}",
                             {"name": location, "about": ref(action)})

    run_props = {"@type": "CreateAction", "name": f"execution of workflow {manifest['id']}",
                 "instrument": ref(workflow),
                 "description": f"workflow {manifest['id']}: {manifest['status']}",
                 "object": refs([data_files[d] for d in data_files if d not in produced and d in consumed]),
                 "result": refs([data_files[d] for d in data_files if d in produced]),
                 "agent": refs(list(people.values()))}
    run_props.update(_record(manifest))
    if gaps:
        run_props["description"] = "Recorded gaps: " + "; ".join(gaps)
    workflow_run = kit.add("#workflow-run", run_props)
    kit.add("#organize", {"@type": "OrganizeAction", "name": "orchestration of the workflow",
                          "instrument": ref(engine), "object": refs(controls), "result": ref(workflow_run),
                          **action_record(manifest.get("start_time"), manifest.get("end_time"),
                                          manifest["status"], manifest.get("error"))})
    if record is not workflow:
        record["about"] = ref(workflow_run)
    for name, path in prov_files.items():
        add_file(path, f"provenance/{path.name}", {"name": name, "encodingFormat": "application/json",
                                                   "conformsTo": {"@id": PROV_JSON},
                                                   "about": refs([workflow_run, *actions])})
    kit.readme(_readme(metadata.name or manifest["name"], manifest, documents, gaps))
    kit.root["mentions"] = refs([workflow_run, *actions])
    if not authors:
        kit.root["author"] = refs([a for a in agents.values() if a.type in ("Person", "Organization")]
                                  or list(agents.values()))
    kit.write(target)
    return CrateResult(target, kit.copied, kit.referenced)


def _outside_root(path: Path, root: str | None) -> str | None:
    """Why a data file read from the manifest is not copied into the crate: it lies outside the
    directory the workflow ran in (a manager-recorded workflow), or None."""
    if not root:
        return None
    try:
        path.resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError):
        return f"outside the workflow's directory {root}: described, not copied"
    return None


def _agent(kit: CrateKit, agent: dict[str, Any], metadata: PublicationMetadata) -> Any:
    """A workflow agent not among the metadata's authors: a Person, an Organization or software."""
    if agent["kind"] == "SoftwareAgent":  # a workflow manager: its own IRI, version and url
        url = agent.get("url")
        return kit.software(url or f"#agent-{agent['id']}", agent["name"], str(agent.get("version") or ""),
                            url or metadata.url)
    return kit.add(f"#agent-{agent['id']}", {"@type": "Organization" if agent["kind"] == "Organization"
                                             else "Person", "name": agent["name"]})


def _record(record: dict[str, Any]) -> dict[str, Any]:
    """The action properties of a task or workflow record of the manifest."""
    return action_record(record.get("start_time"), record.get("end_time"), record["status"], record.get("error"))
