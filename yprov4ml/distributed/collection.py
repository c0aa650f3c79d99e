"""The collection: rank 0's summary of a distributed run, linking every rank's document.

Rank 0 waits (polling the shared run directory, up to a timeout) for the other
ranks' ``prov.rankN.json``; a rank that never writes one — killed, or hung — is
listed as missing instead of hanging rank 0 forever. Polling the file system
works with every launcher and needs no MPI collective, which could not time out.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from prov.model import PROV_LABEL, PROV_LOCATION, PROV_TYPE

from ..prov.decode import attributes, run_activity
from ..prov.document import literal, new_document, prov_kind, run_activity_id, timestamp, to_json
from ..errors import DocumentError
from ..storage.files import atomic_write_text, read_json, sha256_of
from ..storage.layout import COLLECTION_FILE, prov_file
TIMEOUT_VARIABLE = "YPROV4ML_COLLECTION_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
KILLED_WAIT_S = 3.0  # SIGTERM then SIGKILL: Slurm's KillWait is often 30 s, sometimes much less


def collection_timeout(given: float | None = None) -> float:
    """Seconds rank 0 waits for the other ranks: argument, else $YPROV4ML_COLLECTION_TIMEOUT, else 120."""
    if given is not None:
        return float(given)
    try:
        return float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def wait_for_ranks(run_dir: Path, world_size: int, timeout_s: float, poll_s: float = 0.2) -> dict[int, Path]:
    """The rank documents present once all are there or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {r: prov_file(run_dir, r) for r in range(world_size) if prov_file(run_dir, r).is_file()}
        if len(found) == world_size or time.monotonic() >= deadline:
            return found
        time.sleep(poll_s)


def wait_for_collection(run_dir: Path, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Ranks other than 0: wait until rank 0 has written the collection (or the timeout passes).

    Ending together matters: MPICH's mpiexec kills the processes still running
    once the others have exited after a rank died, which would kill rank 0
    while it waits for the dead rank's document.
    """
    deadline = time.monotonic() + timeout_s
    while not (run_dir / COLLECTION_FILE).is_file():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def _run_activity(path: Path) -> dict[str, Any]:
    """The decoded run activity of a rank document ({} when it has none)."""
    try:
        found = run_activity(read_json(path))
    except DocumentError:  # a damaged rank document: its rank is listed with an UNKNOWN status
        return {}
    return attributes(found[1]) if found else {}


def write_collection(run_dir: Path, run_id: str, experiment: str, user_namespace: str, world_size: int,
                     timeout_s: float) -> Path:
    """Write ``collection.json``: the distributed run, its rank documents (sha256), missing ranks."""
    present = wait_for_ranks(run_dir, world_size, timeout_s)
    missing = [r for r in range(world_size) if r not in present]
    doc = new_document(run_id, user_namespace)
    ranks = {r: _run_activity(p) for r, p in present.items()}
    starts = [a["prov:startTime"] for a in ranks.values() if "prov:startTime" in a]
    ends = [a["prov:endTime"] for a in ranks.values() if "prov:endTime" in a]
    statuses = {r: a.get("status", "UNKNOWN") for r, a in ranks.items()}
    overall = "INCOMPLETE" if missing else ("FINISHED" if set(statuses.values()) == {"FINISHED"} else "FAILED")
    job = doc.activity("run:distributed", datetime.fromisoformat(min(starts)) if starts else None,
                       datetime.fromisoformat(max(ends)) if ends else None, {
                           PROV_TYPE: prov_kind("yprov:DistributedRun"), PROV_LABEL: f"{experiment} run {run_id}",
                           "yprov:run_id": run_id, "yprov:experiment": experiment, "yprov:world_size": world_size,
                           "yprov:ranks_recorded": len(present), "yprov:missing_ranks": literal(missing),
                           "yprov:rank_status": literal({str(r): s for r, s in sorted(statuses.items())}),
                           "yprov:status": overall, "yprov:collected_at": timestamp(time.time()).isoformat(),
                       })
    collection = doc.entity("run:collection", {PROV_TYPE: prov_kind("prov:Collection"), PROV_LABEL: "rank documents",
                                               "yprov:world_size": world_size})
    doc.wasGeneratedBy(collection, job)
    for rank, path in sorted(present.items()):
        activity = ranks[rank]
        member = doc.entity(f"run:rank-{rank}/document", {
            PROV_TYPE: prov_kind("yprov:RankDocument"), PROV_LABEL: f"rank {rank} PROV-JSON", PROV_LOCATION: path.name,
            "yprov:rank": rank, "yprov:sha256": sha256_of(path), "yprov:size_bytes": path.stat().st_size,
            "yprov:status": activity.get("status", "UNKNOWN"), "yprov:host": activity.get("host", ""),
        })
        doc.hadMember(collection, member)
        # The rank activity itself lives in the rank document; here it is referenced by id only.
        doc.wasGeneratedBy(member, run_activity_id(rank))
        doc.wasInformedBy(job, run_activity_id(rank))
    out = run_dir / COLLECTION_FILE
    atomic_write_text(out, to_json(doc))
    return out
