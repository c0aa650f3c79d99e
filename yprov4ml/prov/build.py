"""Record → PROV: the one place where a run record becomes a W3C PROV document.

Identifiers live in the run's namespace (``run:``), attribute names in the
yprov4ml vocabulary (``yprov:``). See docs/prov-model.md for the diagram.
"""

from __future__ import annotations

from typing import Any

from prov.model import PROV_LABEL, PROV_LOCATION, PROV_TYPE, ProvDocument

from ..version import __version__
from ..record import FileEntity, ModelVersion, RunRecord
from ..storage.metric_file import FORMAT_VERSION
from ..storage.names import UniqueNames, safe_name, safe_part
from .document import (context_activity_id, literal, metric_entity_id, new_document, prov_kind, run_activity_id,
                       run_namespace, timestamp)


METRIC_FORMAT = f"yprov4ml-metrics/{FORMAT_VERSION}"


def _attrs(prefix_free: dict[str, Any]) -> dict[str, Any]:
    """``{"count": 3}`` → ``{"yprov:count": 3}``, dropping None values."""
    return {f"yprov:{k}": literal(v) for k, v in prefix_free.items() if v is not None}


def build_document(record: RunRecord) -> ProvDocument:
    """The PROV document of one rank of one run."""
    info = record.info
    doc = new_document(info.run_id, info.user_namespace)
    rank = info.rank
    run_attrs = _attrs({
        "run_id": info.run_id, "experiment": info.experiment, "status": info.status, "error": info.error,
        "rank": rank, "local_rank": info.local_rank, "world_size": info.world_size, "launcher": info.launcher,
        "collect_all_processes": info.collect_all_processes,
        "host": info.host, "node": info.node or None, "node_index": info.node_index, "pid": info.pid,
        "command_line": info.command_line, "working_dir": info.working_dir or None,
        "wall_time_s": (info.end_time - info.start_time) if info.end_time else None,
        "redacted": (info.redacted + record.environment.get("redacted", [])) or None,
        **(record.resource_usage or {}), **info.external_ids,
        "attempt": info.attempt if info.previous_attempt else None, "previous_attempt": info.previous_attempt,
    })
    if info.parent_task:
        run_attrs.update(_attrs({f"parent_{k}": v for k, v in info.parent_task.items() if v}))
    run_attrs[PROV_TYPE] = prov_kind("yprov:RunExecution")
    run_attrs[PROV_LABEL] = f"{info.experiment} run {info.run_id} rank {rank}"
    run = doc.activity(run_activity_id(rank), timestamp(info.start_time),
                       timestamp(info.end_time) if info.end_time else None, run_attrs)
    if info.previous_attempt:  # a restart: this attempt ran because of how the last one ended (docs/prov-model.md)
        doc.add_namespace("previous", run_namespace(info.previous_attempt))
        doc.wasInformedBy(run, f"previous:rank-{rank}")

    person = doc.agent(f"user:{safe_part(info.user)}", {PROV_TYPE: prov_kind("prov:Person"), PROV_LABEL: info.user})
    software = doc.agent("yprov:yprov4ml", {PROV_TYPE: prov_kind("prov:SoftwareAgent"), PROV_LABEL: "yprov4ml",
                                            "yprov:version": __version__})
    doc.wasAssociatedWith(run, person)
    doc.wasAssociatedWith(run, software)
    doc.actedOnBehalfOf(software, person)

    contexts = {}

    def depth(name: str) -> int:  # parents before their sub-contexts (nest_context refuses loops)
        return 0 if name not in record.context_parents else 1 + depth(record.context_parents[name])

    for name, (first, last) in sorted(record.context_times.items(), key=lambda item: (depth(item[0]), item[0])):
        parent = record.context_parents.get(name)
        ctx = doc.activity(context_activity_id(rank, name), timestamp(first), timestamp(last), {
            PROV_TYPE: prov_kind("yprov:Context"), PROV_LABEL: name, "yprov:context": name,
            "yprov:duration_s": last - first,
            **_attrs({"parent_context": parent, "source_of_data": record.context_sources.get(name)}),
        })
        doc.wasInformedBy(ctx, contexts.get(parent, run))  # a sub-context is part of its parent's activity
        contexts[name] = ctx

    def activity_for(context: str | None):
        return contexts.get(context, run) if context else run

    lineages: list[tuple[str, Any]] = []  # sample-index series, linked to the dataset of their name below
    param_names = UniqueNames()
    for key, param in sorted(record.params.items()):
        value = param.value
        attrs = {PROV_TYPE: prov_kind("yprov:Parameter"), PROV_LABEL: key, "yprov:key": key, "yprov:value": literal(value)}
        if param.redacted:
            attrs["yprov:redacted"] = literal(param.redacted)
        if not isinstance(value, (bool, int, float, str)):
            attrs["yprov:value_type"] = type(value).__name__
        attrs.update(_attrs({"source": param.source, "is_input": param.is_input or None}))
        doc.used(activity_for(param.context), doc.entity(f"run:rank-{rank}/param/{param_names.name(key)}", attrs),
                 timestamp(param.time))

    for (key, context), series in sorted(record.metrics.items()):
        summary = series.summary()
        attrs = _attrs({
            "key": key, "context": context, "rank": rank, "unit": series.unit, "kind": series.kind,
            **summary, "first_time": None, "last_time": None,
            "series": series.number, "sha256": series.sha256, "format": METRIC_FORMAT,
        })
        if (key, context) in record.metric_exports:
            attrs["yprov:exported_as"] = record.metric_exports[key, context]
        sources = record.metric_sources.get((key, context))
        if sources:
            attrs["yprov:source"] = literal(sources[0] if len(sources) == 1 else sources)
        lineage = series.kind == "indices"  # which samples each step consumed: one entity, not one per sample
        attrs.update({PROV_TYPE: prov_kind("yprov:SampleIndices" if lineage else "yprov:MetricSeries"),
                      PROV_LABEL: f"{key} (sample indices)" if lineage else key, PROV_LOCATION: series.relpath})
        entity = doc.entity(metric_entity_id(rank, context, series.name), attrs)
        last = summary["last_time"]
        doc.wasGeneratedBy(entity, activity_for(context), timestamp(last) if last else None)
        if lineage:
            lineages.append((key, entity))

    taken: set[str] = set()

    def unique(identifier: str) -> str:
        """Two artifacts (or datasets) logged under one name get distinct ids: name, name-2, ..."""
        candidate, n = identifier, 1
        while candidate in taken:
            n += 1
            candidate = f"{identifier}-{n}"
        taken.add(candidate)
        return candidate

    for artifact in record.artifacts:
        _file_entity(doc, unique(f"run:rank-{rank}/artifact/{safe_name(artifact.name)}"), artifact,
                     "yprov:Artifact", activity_for(artifact.context))

    previous: dict[str, Any] = {}
    model_names = UniqueNames()
    for model in record.models:
        entity = _file_entity(doc, f"run:rank-{rank}/model/{model_names.name(model.model_name)}/v{model.version}",
                              model, "yprov:ModelVersion", activity_for(model.context))
        if model.model_name in previous:
            doc.wasDerivedFrom(entity, previous[model.model_name], other_attributes={PROV_TYPE: prov_kind("prov:Revision")})
        previous[model.model_name] = entity

    for dataset in record.datasets:
        attrs = _attrs({"label": dataset.label, "context": dataset.context, **dataset.attributes})
        attrs.update({PROV_TYPE: prov_kind("yprov:Dataset"), PROV_LABEL: dataset.label})
        entity = doc.entity(unique(f"run:rank-{rank}/dataset/{safe_name(dataset.label)}"), attrs)
        doc.used(activity_for(dataset.context), entity, timestamp(dataset.time))
        for key, lineage in lineages:
            if key == dataset.attributes.get("sample_indices"):
                doc.wasDerivedFrom(lineage, entity)

    for facts, kind, label, name, location in (
            (record.source, "yprov:SourceCode", "source code", "source", "script"),
            (record.randomness, "yprov:RandomState", "random number generators", "randomness", "rng_states"),
            (record.environment, "yprov:Environment", "execution environment", "environment", None)):
        if facts:  # one entity each, used by the run
            attrs = _attrs(facts)
            attrs.update({PROV_TYPE: prov_kind(kind), PROV_LABEL: label})
            if location in facts:
                attrs[PROV_LOCATION] = facts[location]
            doc.used(run, doc.entity(f"run:rank-{rank}/{name}", attrs))
    return doc


def _file_entity(doc: ProvDocument, identifier: str, item: FileEntity, kind: str, activity: Any) -> Any:
    extra = {"model_name": item.model_name, "version": item.version, "final": item.final} \
        if isinstance(item, ModelVersion) else {}
    attrs = _attrs({
        "name": item.name, "size_bytes": item.size, "sha256": item.sha256, "context": item.context,
        "step": item.step, "original_path": item.original_path, "is_input": item.is_input,
        **extra, **item.attributes,
    })
    attrs.update({PROV_TYPE: prov_kind(kind), PROV_LABEL: item.name, PROV_LOCATION: item.path})
    entity = doc.entity(identifier, attrs)
    if item.is_input:
        doc.used(activity, entity, timestamp(item.time))
    else:
        doc.wasGeneratedBy(entity, activity, timestamp(item.time))
    return entity
