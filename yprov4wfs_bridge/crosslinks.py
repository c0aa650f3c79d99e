"""Direct links across the levels of the multi-level bundle, for readers that do not walk into bundles.

Without them a task reaches the run it ran only through the bundle entity
(task ← bundle → GRAPH bundle { RunExecution }), and a workflow's file and the
run's record of the same bytes are strangers. At the top level we add:

- ``wasStartedBy(run activity, -, task)``: the task is the *starter* of each
  rank's run activity — PROV-DM's term for "this activity was launched by that
  one" (the task's job started the training process). PROV-O writes a start
  by an activity only in qualified form (``prov:hadActivity``), so
- ``wasInformedBy(run activity, task)`` as well: the run used what the task
  handed it (its command, inputs, environment) — a plain triple any query finds.
- ``alternateOf(workflow file, run entity)`` for each pair with the same
  sha256: two entities presenting aspects of one content (a rule's output
  file and the ModelVersion, Dataset or artifact the run recorded for it).
  ``alternateOf``, not ``specializationOf``: neither is a more specific aspect
  of the other — one is a file at a path, the other a version in a run.

The run's identifiers live in the run's namespace, declared inside its bundle;
the top level declares it once as ``yrun:`` (other namespaces as ``yrunN:``),
so ``yrun:<run id>/rank-0`` names the same IRI as ``run:rank-0`` inside.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from yprov4ml.prov.decode import RankDocument, decode, run_activity
from yprov4ml.prov.document import RUN_NAMESPACE

LINK_PREFIX = "_:crosslevel"  # the identifiers of the relations added here, so that read_bundle can take them out
RUN_PREFIX = "yrun"
RELATIONS = ("wasStartedBy", "wasInformedBy", "alternateOf")


def _declared_here(prefix: str) -> bool:
    return prefix == RUN_PREFIX or (prefix.startswith(RUN_PREFIX) and prefix[len(RUN_PREFIX):].isdigit())


def _top_level_name(qname: str, inner: dict[str, str], prefixes: dict[str, str]) -> str | None:
    """The QName, at the top level, of a bundle's ``qname`` (None where its prefix is not declared), declaring
    the namespace there once: every run's namespace under ``yrun:``, any other as ``yrunN:``."""
    prefix, _, local = qname.partition(":")
    namespace = inner.get(prefix)
    if not isinstance(namespace, str) or not local:
        return None
    if namespace.startswith(RUN_NAMESPACE):
        local, namespace = namespace[len(RUN_NAMESPACE):] + local, RUN_NAMESPACE
    for name, bound in prefixes.items():
        if bound == namespace and _declared_here(name):
            return f"{name}:{local}"
    name = RUN_PREFIX if namespace == RUN_NAMESPACE else \
        next(f"{RUN_PREFIX}{n}" for n in range(1, len(prefixes) + 2) if f"{RUN_PREFIX}{n}" not in prefixes)
    prefixes[name] = namespace
    return f"{name}:{local}"


def _workflow_files_by_digest(entities: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for identifier, attrs in entities.items():
        digest = decode(attrs.get("yprov:sha256")) if isinstance(attrs, dict) else None
        if isinstance(digest, str) and digest:
            found.setdefault(digest, []).append(identifier)
    return found


def add_cross_level_links(out: dict[str, Any], documents: Iterable[tuple[RankDocument, str]]) -> None:
    """Add the links to ``out`` (the top level) for each (rank document, its task's activity id)."""
    prefixes = out.setdefault("prefix", {})
    files = _workflow_files_by_digest(out.get("entity", {}))
    started, informed, alternates = {}, {}, {}
    names = (f"{LINK_PREFIX}{n}" for n in itertools.count(1))  # one series: a relation's id is unique in a document
    for doc, task in documents:
        inner = doc.data.get("prefix") if isinstance(doc.data.get("prefix"), dict) else {}
        found = run_activity(doc.data)
        run = _top_level_name(found[0], inner, prefixes) if found else None
        if run is not None:
            started[next(names)] = {"prov:activity": run, "prov:starter": task}
            informed[next(names)] = {"prov:informed": run, "prov:informant": task}
        for identifier, attrs in (doc.data.get("entity") or {}).items():
            digest = decode(attrs.get("yprov:sha256")) if isinstance(attrs, dict) else None
            entity = _top_level_name(identifier, inner, prefixes) if digest in files else None
            for file in files[digest] if entity else ():
                alternates[next(names)] = {"prov:alternate1": file, "prov:alternate2": entity}
    for relation, records in zip(RELATIONS, (started, informed, alternates)):
        if records:
            out.setdefault(relation, {}).update(records)


def remove_cross_level_links(data: dict[str, Any]) -> None:
    """Undo :func:`add_cross_level_links` on a read top level (a document without them is left as it is)."""
    for relation in RELATIONS:
        records = data.get(relation, {})
        for key in [k for k in records if k.startswith(LINK_PREFIX)]:
            del records[key]
        if relation in data and not records:
            del data[relation]
    prefixes = data.get("prefix", {})
    for prefix in [p for p in prefixes if _declared_here(p)]:
        del prefixes[prefix]
