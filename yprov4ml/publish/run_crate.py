"""The RO-Crate of one run (Process Run Crate 0.5): its PROV-JSON, metric files, model versions, source snapshot.

Each rank's execution is a ``CreateAction`` whose instrument is the training
program (a ``SoftwareApplication``), whose ``object`` are the parameters
(``PropertyValue``), datasets and source files it used, and whose ``result``
are the metric files and model versions it produced. The model card, when the
run has one, is the crate's README.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import NotARunError
from ..prov.decode import RankDocument, attributes, document_files, load_rank_document, prov_type
from ..prov.document import VOCABULARY
from ..prov.reader import merged_rank
from ..storage.layout import rank_documents
from .card import CARD
from .crate_kit import PROV_JSON, CrateKit, action_record, ref, refs
from .metadata import PublicationMetadata

CRATE = "crate"
SKIPPED = ("journal.rank",)  # crash-recovery journals: the documents supersede them


def _documents(run_dir: Path) -> list[RankDocument]:
    paths = rank_documents(run_dir)
    if not paths:
        raise NotARunError(f"{run_dir} is not a yprov4ml run directory: no prov.rankN.json in it")
    return [load_rank_document(path) for path in paths]


def _run_files(run_dir: Path) -> list[Path]:
    """Every regular file of the run directory (no links, nothing hidden, no journal, no earlier crate)."""
    found = []
    for directory, subdirs, files in os.walk(run_dir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and
                            not (Path(directory) == run_dir and d == CRATE))
        for name in sorted(files):
            path = Path(directory) / name
            if not name.startswith(".") and not name.startswith(SKIPPED) and path.is_file() \
                    and not path.is_symlink():
                found.append(path)
    return found


def _program(kit: CrateKit, doc: RankDocument, metadata: PublicationMetadata) -> Any:
    """The training program as the instrument: its place in the code repository when ``url`` is given."""
    source = next((attributes(e) for e in (doc.data.get("entity") or {}).values()
                   if prov_type(e) == "yprov:SourceCode"), {})
    script = str(source.get("script_in_tree") or PurePosixPath(str(source.get("script") or "program")).name)
    entity_id = f"{metadata.url.rstrip('/')}/{script}" if metadata.url else f"#program-{script}"
    version = str(source.get("git_commit") or metadata.version or
                  (f"sha256:{source['script_sha256']}" if source.get("script_sha256") else "unknown"))
    return kit.software(entity_id, script, version, metadata.url,
                        description=f"the training program run by yprov4ml ({doc.run.get('command_line', '')})")


def build_run_crate(run_dir: str | Path, target: str | Path | None = None,
                    metadata: PublicationMetadata | None = None) -> Path:
    """Write the run's crate (``<run_dir>/crate`` unless ``target``); returns its directory. ``run_dir`` may
    be a merged record (``yprov4ml merge``): the crate is then its run's, the merged record in it."""
    run_dir = Path(run_dir).absolute()
    merged = None
    if run_dir.is_file():
        placed = merged_rank(run_dir, 0)
        merged, run_dir = (run_dir, placed[1]) if placed is not None else (None, run_dir.parent)
    metadata = metadata or PublicationMetadata()
    documents = _documents(run_dir)
    first = documents[0]
    experiment = str(first.run.get("experiment", ""))
    kit = CrateKit(metadata.name or f"{experiment} run {first.run_id}",
                   metadata.description or f"One {experiment} training run ({first.world_size} rank(s)) recorded by "
                   "yprov4ml as W3C PROV-JSON, with its metrics, model versions and source.", ["process"])
    authors = kit.apply_metadata(metadata)
    if not authors:
        kit.root["author"] = ref(kit.add("#run-user", {"@type": "Person", "name": first.run.get("user") or
                                                       _user(first) or "unknown"}))
    files = {path: kit.add_file(path, path.relative_to(run_dir).as_posix(), {"name": path.name})
             for path in _run_files(run_dir)}
    actions = []
    for doc in documents:
        used, made = [], []
        for kind, location, path in document_files(doc):
            entity = files.get(path) if path is not None else None
            if entity is not None:
                (made if kind != "yprov:Artifact" else used).append(entity)
        for entity in (doc.data.get("entity") or {}).values():
            attrs = attributes(entity)
            if prov_type(entity) == "yprov:Parameter":
                used.append(kit.add(f"#rank-{doc.rank}-param-{attrs.get('key')}", {
                    "@type": "PropertyValue", "name": str(attrs.get("key")), "value": str(attrs.get("value")),
                    "propertyID": f"{VOCABULARY}Parameter"}))
            elif prov_type(entity) == "yprov:Dataset":
                used.append(kit.add(f"#rank-{doc.rank}-dataset-{attrs.get('label')}", {
                    "@type": "Dataset", "name": str(attrs.get("label")),
                    "description": f"{attrs.get('dataset_class', '')} of {attrs.get('samples', '?')} samples",
                    **({"sha256": attrs["sha256"]} if attrs.get("sha256") else {})}))
        used += [e for p, e in files.items() if p.is_relative_to(run_dir / "source" / f"rank{doc.rank}")]
        props: dict[str, Any] = {
            "@type": "CreateAction", "name": f"rank {doc.rank} of run {doc.run_id}",
            "description": f"{experiment} run {doc.run_id}, rank {doc.rank} of {doc.world_size}: {doc.status}",
            "instrument": ref(_program(kit, doc, metadata)), "agent": kit.root["author"],
            "object": refs(used), "result": refs(made)}
        props.update(action_record(doc.run.get("prov:startTime"), doc.run.get("prov:endTime"), doc.status,
                                   doc.run.get("error")))
        actions.append(kit.add(f"#rank-{doc.rank}", props))
        prov_entity = files.get(doc.path)
        if prov_entity is not None:
            prov_entity["conformsTo"] = {"@id": PROV_JSON}
            prov_entity["about"] = ref(actions[-1])
    kit.root["mentions"] = refs(actions)
    if merged is not None:  # beside the rank documents, or brought in from where it was written
        entity = files.get(merged) or kit.add_file(merged, merged.name, {"name": merged.name})
        entity["conformsTo"], entity["about"] = {"@id": PROV_JSON}, refs(actions)
        entity["description"] = "the merged record of the run: one bundle per rank (yprov4ml merge)"
    card = run_dir / CARD
    text = card.read_text(encoding="utf-8") if card.is_file() else \
        f"# {experiment} run {first.run_id}\n\nThe provenance of one training run, recorded by yprov4ml.\n"
    kit.readme(text)
    return kit.write(Path(target) if target is not None else run_dir / CRATE)


def _user(doc: RankDocument) -> str:
    for element in (doc.data.get("agent") or {}).values():
        if prov_type(element) == "prov:Person":
            return str(attributes(element).get("prov:label", ""))
    return ""
