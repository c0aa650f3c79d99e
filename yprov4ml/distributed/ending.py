"""A distributed run's end: every rank reports to rank 0, which writes the collection; the ranks end together."""

from __future__ import annotations

from typing import Any

from ..prov.document import timestamp
from .collection import (KILLED_WAIT_S, collection_timeout, rank_report, reports_from_files, wait_for_collection,
                         write_collection)
from .coordination import coordinator


def run_facts(record: Any) -> dict[str, Any]:
    """The facts of a finished record that its rank document's run activity carries and rank 0 collects."""
    info = record.info
    facts = {"status": info.status, "error": info.error, "host": info.host, "node": info.node, "node_index": info.node_index,
             "prov:startTime": timestamp(info.start_time).isoformat()}
    if info.end_time:
        facts["prov:endTime"] = timestamp(info.end_time).isoformat()
    facts.update({k: v for k, v in record.resource_usage.items() if k.startswith("total_")})
    return facts


def end_with_other_ranks(run: Any, status: str) -> None:
    """After the rank's document is written (and in place in the shared run directory): rank 0 gathers the
    ranks' reports and writes ``collection.json``; the others report, then wait for it (bounded)."""
    info = run.record.info
    if not (info.collect_all_processes and info.world_size > 1):
        return
    timeout = collection_timeout(run.collection_timeout_s)
    if status == "KILLED":  # a killed job has seconds before SIGKILL: do not wait long for the others
        timeout = min(timeout, KILLED_WAIT_S)
    channel = coordinator(info.run_id, info.world_size)
    digest, size = run.prov_written  # of the bytes just written: not read back from the shared file system
    own = rank_report(info.rank, run.prov_path, run_facts(run.record), digest, size)
    if info.rank == 0:
        reports = channel.gather_reports(info.world_size, timeout) if channel else \
            reports_from_files(run.run_dir, info.world_size, timeout)
        reports[0] = own
        write_collection(run.run_dir, info.run_id, info.experiment, info.user_namespace, info.world_size, reports,
                         channel.name if channel else "file system")
        if channel:
            channel.announce_collected(info.world_size)
        return
    if channel:
        channel.send_report(own)
    if status == "FINISHED":  # end together with rank 0 (see wait_for_collection)
        wait = timeout + max(5.0, timeout / 4)
        if channel:
            channel.wait_collected(wait)
        else:
            wait_for_collection(run.run_dir, wait)
