"""The collection: rank 0's summary of a distributed run, linking every rank's document.

Rank 0 learns what the other ranks recorded from their reports — document name, sha256, size, status,
host, node and energy totals. The reports come through MPI or torch.distributed when the program set one
up (``coordination``), else from the rank documents themselves, found by polling the shared run
directory. Either way a rank that never reports within the timeout — killed, or hung — is listed as
missing instead of hanging rank 0 forever. Energy is summed per node (measured once per node, by its
local rank 0) and over the whole run.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from prov.model import PROV_LABEL, PROV_LOCATION, PROV_TYPE

from ..collectors.energy import TOTALS, summed_totals
from ..errors import DocumentError
from ..prov.decode import attributes, run_activity
from ..prov.document import literal, new_document, prov_kind, run_activity_id, timestamp, to_json
from ..storage.files import atomic_write_text, read_json, sha256_of
from ..storage.layout import COLLECTION_FILE, place_in_run, prov_file
from .failures import ERROR_SHOWN, failure_attributes, first_failure
from .polling import backing_off

TIMEOUT_VARIABLE = "YPROV4ML_COLLECTION_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
KILLED_WAIT_S = 3.0  # SIGTERM then SIGKILL: Slurm's KillWait is often 30 s, sometimes much less
REPORTED = ("status", "error", "host", "node", "node_index", "prov:startTime", "prov:endTime",
            *(f"total_{figure}" for figure in TOTALS))


def collection_timeout(given: float | None = None) -> float:
    """Seconds rank 0 waits for the other ranks: argument, else $YPROV4ML_COLLECTION_TIMEOUT, else 120."""
    if given is not None:
        return float(given)
    try:
        return float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def rank_report(rank: int, document: Path, run: dict[str, Any], sha256: str | None = None,
                size: int | None = None) -> dict[str, Any]:
    """What a rank tells rank 0 of its record: its document (name, sha256, size: read from the file unless
    given) and its run activity's status, error, host, node, times and energy totals (``run``: the decoded
    run activity)."""
    report = {"rank": rank, "document": place_in_run(document), "sha256": sha256 or sha256_of(document),
              "size_bytes": size if size is not None else document.stat().st_size}
    report.update({name: run[name] for name in REPORTED if name in run})
    if isinstance(report.get("error"), str):  # a traceback's head names the failure; the document keeps it whole
        report["error"] = report["error"][:ERROR_SHOWN]
    return report


POLL_FIRST_S, POLL_MOST_S = 0.2, 5.0  # thousands of ranks polling a shared file system: not 5 times a second each


def wait_for_ranks(run_dir: Path, world_size: int, timeout_s: float) -> dict[int, Path]:
    """The rank documents present once all are there or ``timeout_s`` has passed (each poll looks only for
    the ones still missing)."""
    found: dict[int, Path] = {}
    missing = list(range(world_size))
    for _ in backing_off(timeout_s, POLL_FIRST_S, POLL_MOST_S):
        for rank in missing:
            if prov_file(run_dir, rank).is_file():
                found[rank] = prov_file(run_dir, rank)
        missing = [r for r in missing if r not in found]
        if not missing:
            break
    return found


def wait_for_collection(run_dir: Path, timeout_s: float) -> bool:
    """Ranks other than 0, without MPI or torch.distributed: wait until rank 0 has written the collection.

    Ending together matters: MPICH's mpiexec kills the processes still running
    once the others have exited after a rank died, which would kill rank 0
    while it waits for the dead rank's document.
    """
    return any((run_dir / COLLECTION_FILE).is_file() for _ in backing_off(timeout_s, POLL_FIRST_S, POLL_MOST_S))


def reports_from_files(run_dir: Path, world_size: int, timeout_s: float) -> dict[int, dict[str, Any]]:
    """The reports of the ranks whose documents appear in the shared run directory within ``timeout_s``."""
    reports = {}
    for rank, path in wait_for_ranks(run_dir, world_size, timeout_s).items():
        try:
            found = run_activity(read_json(path))
        except DocumentError:  # a damaged rank document: its rank is listed with an UNKNOWN status
            found = None
        reports[rank] = rank_report(rank, path, attributes(found[1]) if found else {})
    return reports


def node_totals(reports: dict[int, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Energy totals per node (each node measured by its local rank 0) — the ranks' totals, summed by node."""
    nodes: dict[str, list[dict[str, Any]]] = {}
    for report in reports.values():
        nodes.setdefault(str(report.get("node") or report.get("host") or "unknown"), []).append(report)
    return {node: totals for node, members in sorted(nodes.items()) if (totals := summed_totals(members))}


def write_collection(run_dir: Path, run_id: str, experiment: str, user_namespace: str, world_size: int,
                     reports: dict[int, dict[str, Any]], coordinated_by: str = "file system",
                     late: list[int] | None = None) -> Path:
    """Write ``collection.json``: the distributed run, its rank documents (sha256), missing ranks, the rank
    that failed first, and its energy per node and in total. ``late``: ranks a later reader (the merge) found
    after rank 0 had listed them missing."""
    missing = [r for r in range(world_size) if r not in reports]
    doc = new_document(run_id, user_namespace)
    starts = [r["prov:startTime"] for r in reports.values() if isinstance(r.get("prov:startTime"), str)]
    ends = [r["prov:endTime"] for r in reports.values() if isinstance(r.get("prov:endTime"), str)]
    statuses = {rank: str(r.get("status", "UNKNOWN")) for rank, r in reports.items()}
    overall = "INCOMPLETE" if missing else ("FINISHED" if set(statuses.values()) == {"FINISHED"} else "FAILED")
    names = sorted({str(r.get("node") or r.get("host") or "unknown") for r in reports.values()})
    per_node = node_totals(reports)
    job = doc.activity("run:distributed", _time(min(starts)) if starts else None, _time(max(ends)) if ends else None, {
        PROV_TYPE: prov_kind("yprov:DistributedRun"), PROV_LABEL: f"{experiment} run {run_id}",
        "yprov:run_id": run_id, "yprov:experiment": experiment, "yprov:world_size": world_size,
        "yprov:ranks_recorded": len(reports), "yprov:missing_ranks": literal(missing),
        "yprov:rank_status": literal({str(r): s for r, s in sorted(statuses.items())}),
        "yprov:status": overall, "yprov:collected_at": timestamp(time.time()).isoformat(),
        "yprov:coordinated_by": coordinated_by,
        "yprov:nodes": literal(names), "yprov:energy_by_node": literal(per_node),
        **{f"yprov:{name}": value for name, value in summed_totals(reports.values()).items()},
        **failure_attributes(first_failure(reports)),
        **({"yprov:late_ranks": literal(sorted(late)), "yprov:corrected_at": timestamp(time.time()).isoformat()}
           if late else {}),
    })
    collection = doc.entity("run:collection", {PROV_TYPE: prov_kind("prov:Collection"), PROV_LABEL: "rank documents",
                                               "yprov:world_size": world_size})
    doc.wasGeneratedBy(collection, job)
    for rank, report in sorted(reports.items()):
        node = str(report.get("node") or report.get("host") or "unknown")
        index = report.get("node_index")
        member = doc.entity(f"run:rank-{rank}/document", {
            PROV_TYPE: prov_kind("yprov:RankDocument"), PROV_LABEL: f"rank {rank} PROV-JSON",
            PROV_LOCATION: str(report.get("document", place_in_run(prov_file(run_dir, rank)))), "yprov:rank": rank,
            "yprov:sha256": str(report.get("sha256", "")), "yprov:size_bytes": int(report.get("size_bytes", 0)),
            "yprov:status": statuses[rank], "yprov:host": str(report.get("host", "")), "yprov:node": node,
            # the launcher's node index, else the node's place among the run's nodes in name order
            "yprov:node_index": index if isinstance(index, int) else names.index(node),
        })
        doc.hadMember(collection, member)
        # The rank activity itself lives in the rank document; here it is referenced by id only.
        doc.wasGeneratedBy(member, run_activity_id(rank))
        doc.wasInformedBy(job, run_activity_id(rank))
    out = run_dir / COLLECTION_FILE
    atomic_write_text(out, to_json(doc))
    return out


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def correct_late_ranks(run_dir: Path, run_id: str,
                       documents: dict[int, tuple[Path, dict[str, Any], str]]) -> list[int]:
    """Rewrite ``collection.json`` when ranks it lists as missing have a document now (they were late, not
    dead); ``documents``: rank → (document, decoded run activity, sha256) of run ``run_id``, as the merge
    read them. Returns the ranks found late (nothing is rewritten when there are none)."""
    path = run_dir / COLLECTION_FILE
    try:
        data = read_json(path)
        job = data["activity"]["run:distributed"]
        missing = json.loads(job["yprov:missing_ranks"])
        facts = attributes(job)
        world = int(facts["world_size"])
    except (DocumentError, KeyError, TypeError, ValueError):
        return []  # no collection (or not ours): nothing to correct
    late = sorted(r for r in missing if isinstance(r, int) and r in documents)
    if not late or facts.get("run_id") != run_id:
        return []
    reports = {rank: rank_report(rank, document, run, digest)
               for rank, (document, run, digest) in documents.items() if 0 <= rank < world}
    user_namespace = str(data.get("prefix", {}).get("user", ""))
    write_collection(run_dir, str(facts.get("run_id", run_dir.name)), str(facts.get("experiment", "")),
                     user_namespace, world, reports, str(facts.get("coordinated_by", "file system")), late)
    return late
