"""Recovery: an unfinished run directory (killed, crashed) turned into valid PROV-JSON.

Everything a run logs is in its journal as it happens, and its metric points
are in the metric files up to the last flushed chunk. ``recover`` rebuilds the
record of every rank that has a journal but no document, and writes its
``prov.rankN.json`` with status KILLED (the journal has no end) and the last
step reached. It never touches a rank that already has a document, so running
it twice changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

from ..distributed.failures import DIED, died_first, first_failure_of_run, killed_after
from ..errors import NotARunError
from ..storage.files import atomic_write_text, resolve_inside, sha256_of, tree_size_and_sha256
from ..storage.journal import read_journal
from ..storage.layout import journal_file, located, metric_file, place_in_run, prov_file, rank_journals
from ..storage.metric_file import read_metrics_file
from ..storage.staging import move_into
from ..storage.series import MetricSeries
from ..record import DatasetInfo, FileEntity, ModelVersion, Param, RunInfo, RunRecord


@dataclass
class RecoveryResult:
    run_dir: Path
    recovered: dict[int, Path] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)


def _only(cls: type, event: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in event.items() if k in names}


def record_from_journal(run_dir: Path, rank: int) -> RunRecord:
    """The run record of one rank, rebuilt from its journal and metric files."""
    journal = located(journal_file(run_dir, rank))
    events = list(read_journal(journal))
    if not events or events[0].get("event") != "start":
        raise NotARunError(f"{journal}: no start event; this journal cannot be recovered")
    start = events[0]
    record = RunRecord(RunInfo(**_only(RunInfo, start)))
    record.source = start.get("source") or {}
    info = record.info
    ended = None
    declared: list[dict] = []
    hashed: dict[str, dict] = {}  # digests the background worker finished before the end
    last_time = info.start_time
    for event in events[1:]:
        kind = event.get("event")
        if kind == "param":
            context, source = event.get("context"), event.get("source")
            record.params[event["key"]] = Param(
                event["key"], event["value"], event["time"], event.get("redacted") or [],
                context if isinstance(context, str) else None, source if isinstance(source, str) else None,
                event.get("is_input") is True)
            if isinstance(context, str):
                record.touch_context(context, event["time"])
        elif kind == "metric":
            declared.append(event)
        elif kind == "context" and isinstance(event.get("context"), str) and isinstance(event.get("time"), float):
            parent, source = event.get("parent"), event.get("source")
            try:
                record.nest_context(event["context"], parent if isinstance(parent, str) else None,
                                    source if isinstance(source, str) else None, event["time"])
            except ValueError:  # a damaged journal's loop of contexts: the context stays, without the parent
                record.touch_context(event["context"], event["time"])
        elif kind == "metric_source" and isinstance(event.get("source"), str):
            record.metric_sources.setdefault((event.get("key"), event.get("context")), []).append(event["source"])
        elif kind == "artifact":
            record.artifacts.append(FileEntity(**_only(FileEntity, event)))
        elif kind == "model":
            model = ModelVersion(**_only(ModelVersion, event))
            if isinstance(model.attributes, dict) and model.attributes.get("incremental") is False:  # replaces its name's
                record.models = [m for m in record.models if not (m.model_name == model.model_name and
                                                                  m.attributes.get("incremental") is False)]
            record.models.append(model)
        elif kind == "dataset":
            record.datasets.append(DatasetInfo(**_only(DatasetInfo, event)))
        elif kind == "file_hashed" and isinstance(event.get("path"), str) and isinstance(event.get("sha256"), str):
            hashed[event["path"]] = event
        elif kind == "rng_states" and isinstance(event.get("states"), dict):  # a killed run can be re-run too
            text = json.dumps(event["states"], sort_keys=True).encode()
            record.randomness = {"rng_states": f"{place_in_run(journal)}#rng_states",
                                 "rng_states_sha256": hashlib.sha256(text).hexdigest()}
        elif kind == "end":
            ended = event
        last_time = max(last_time, event.get("time") or last_time)
    _fill_digests(run_dir, [*record.artifacts, *record.models], hashed)
    for item in [*record.artifacts, *record.models, *record.datasets]:
        if item.context:
            record.touch_context(item.context, item.time)
        last_time = max(last_time, item.time)
    record.metrics = recovered_series(run_dir, rank, declared)
    for series in record.metrics.values():
        if series.count:
            record.touch_context(series.context, series.first_time)
            record.touch_context(series.context, series.last_time)
            last_time = max(last_time, series.last_time)
    if ended:
        info.status, info.error, info.end_time = ended.get("status", "FINISHED"), ended.get("error"), ended["end_time"]
    else:
        info.status = "KILLED"
        info.error = "the process ended without end_run (killed or crashed); recovered from the journal"
        info.end_time = last_time
    steps = [s.last_step for s in record.metrics.values() if s.last_step is not None]
    record.resource_usage.update({"recovered": True, "last_step": max(steps) if steps else None})
    record.environment = {"capture_error": "not captured: the run did not reach end_run"}
    return record


def _fill_digests(run_dir: Path, items: list[FileEntity], hashed: dict[str, dict]) -> None:
    """Digests from the journal's ``file_hashed`` events; the files the run had not hashed yet are hashed now,
    if they are whole (a copy cut short by the kill is said, not hashed)."""
    for item in items:
        if item.sha256:
            continue
        event = hashed.get(item.path)
        if event is not None:
            item.sha256 = event["sha256"]
            item.size = event.get("size") if isinstance(event.get("size"), int) else item.size
            continue
        path = resolve_inside(run_dir, item.path) if not Path(item.path).is_absolute() else Path(item.path)
        if path is None or not path.exists():
            item.attributes["file_problem"] = "the run was killed before this file was complete"
            continue
        item.size, item.sha256 = tree_size_and_sha256(path)
        item.attributes["hashed_by_recover"] = True


def recovered_series(run_dir: Path, rank: int, declared: list[dict]) -> dict[tuple[str, str], MetricSeries]:
    """The series of a rank rebuilt from its metric file: those the journal declared, and any whose declaration
    reached the file but not the journal; each with the summary of its intact records."""
    path = located(metric_file(run_dir, rank))
    try:
        written = read_metrics_file(path).series if path.is_file() else {}
    except ValueError:  # a header torn by the kill: the series are declared, without points
        written = {}
    digest = sha256_of(path) if path.is_file() else None
    events = {e["number"]: e for e in declared if isinstance(e.get("number"), int) and
              isinstance(e.get("key"), str) and isinstance(e.get("context"), str)}
    for number, data in written.items():
        if number not in events and data.key:
            events[number] = {"key": data.key, "context": data.context, "kind": data.kind, "unit": data.unit,
                              "name": data.name}
    found = {}
    for number, event in sorted(events.items()):
        kind = event.get("kind") if event.get("kind") in ("vector", "indices") else "scalar"
        series = MetricSeries(event["key"], event["context"], number, str(event.get("name") or number), path,
                              place_in_run(path), event.get("unit"), kind, event.get("shape"))
        data = written.get(number)
        if data is not None and data.values and data.kind == kind:
            series.summarise(tuple(data.steps), tuple(data.times), tuple(data.values))
            series.next_step = data.steps[-1] + 1
        series.declared, series.sha256 = True, digest
        found[event["key"], event["context"]] = series
    return found


def still_running(start: dict) -> str | None:
    """Why the process that wrote a journal looks alive (same host, same pid, started before the run), or None."""
    import psutil

    pid, host = start.get("pid"), start.get("host")
    if host != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped by its parent
            return None
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None
    # A recycled pid belongs to a process started after the run began.
    if created <= float(start.get("start_time") or 0) + 1.0:
        return f"still running (pid {pid} on this host): let it end, or stop it, before recovering"
    return None


def recover(run_dir: str | Path, force: bool = False) -> RecoveryResult:
    """Write the missing rank documents of ``run_dir``; finished and still-running ranks are left as they are."""
    from ..prov.build import build_document
    from ..prov.document import to_json

    run_dir = Path(run_dir)
    ranks = rank_journals(run_dir) if run_dir.is_dir() else {}
    if not ranks:
        raise NotARunError(f"{run_dir} is not a yprov4ml run directory: no journal.rank*.jsonl in it")
    result = RecoveryResult(run_dir)
    failed_first = first_failure_of_run(run_dir, ranks) if len(ranks) > 1 else None
    for rank, journal in ranks.items():
        target = journal.with_name(prov_file(run_dir, rank).name)  # beside its journal
        if target.exists():
            result.skipped[rank] = "already has its document"
            continue
        start = next(read_journal(journal), None)
        if start is None:
            result.skipped[rank] = "never started: its journal is empty (the process ended inside start_run)"
            continue
        alive = None if force else still_running(start)
        if alive:
            result.skipped[rank] = alive
            continue
        try:
            record = record_from_journal(run_dir, rank)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise NotARunError(f"{journal}: the journal is damaged and cannot be recovered "
                               f"({type(exc).__name__}: {exc})") from None
        if failed_first is not None and record.info.status == "KILLED":
            if failed_first.rank != rank:
                record.info.error = killed_after(failed_first)
                record.resource_usage["ended_after_failure_of_rank"] = failed_first.rank
            elif failed_first.error == DIED:
                record.info.error = died_first(failed_first)
                record.resource_usage["ended_first"] = True
        atomic_write_text(target, to_json(build_document(record)))
        result.recovered[rank] = target
    return result


def run_dirs_below(path: Path, depth: int = 3) -> list[Path]:
    """``path`` itself when it is a run directory, else the run directories under it (an experiment, a save dir)."""
    if any(path.glob("journal.rank*.jsonl")):
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    return [run for child in sorted(path.iterdir()) if child.is_dir() and not child.is_symlink()
            for run in run_dirs_below(child, depth - 1)]


def recover_tree(path: str | Path, force: bool = False) -> list[RecoveryResult]:
    """Recover the run directory ``path``, or every run directory below it."""
    runs = run_dirs_below(Path(path))
    if not runs:
        raise NotARunError(f"{path}: no journal.rank*.jsonl in it or below it; "
                           "give a run directory, an experiment directory or a provenance directory")
    return [recover(run, force) for run in runs]


def main(argv: Sequence[str] | None = None, prog: str = "yprov4ml recover") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Write valid PROV-JSON for the ranks of an unfinished "
                                     "run (status KILLED, last step reached), from its journal and metric files.")
    parser.add_argument("run_dirs", nargs="+", help="run directories, or directories holding runs")
    parser.add_argument("--force", action="store_true", help="recover ranks whose process still looks alive")
    parser.add_argument("--into", help="a staged run (start_run(stage_dir=...)): move its recovered files into "
                                       "this shared run directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.into and len(args.run_dirs) != 1:
        parser.error("--into takes one staged run directory")
    code, report = 0, []
    for run_dir in args.run_dirs:
        try:
            results = recover_tree(run_dir, args.force)
        except (NotARunError, OSError, ValueError, KeyError) as exc:
            print(f"{prog}: {run_dir}: {exc}", file=sys.stderr)
            code = 2
            continue
        if args.into:
            if len(results) != 1:
                print(f"{prog}: {run_dir}: --into needs one run directory, not a directory of runs", file=sys.stderr)
                return 2
            move_into(results[0].run_dir, Path(args.into))
            results[0].recovered = {r: located(prov_file(Path(args.into), r)) for r in results[0].recovered}
            results[0].run_dir = Path(args.into)
        for result in results:
            report.append({"run_dir": str(result.run_dir), "recovered": sorted(result.recovered),
                           "skipped": {str(k): v for k, v in result.skipped.items()}})
            if not args.json:
                for rank, path in sorted(result.recovered.items()):
                    print(f"{path}: recovered (status KILLED)")
                for rank, why in sorted(result.skipped.items()):
                    print(f"{result.run_dir}: rank {rank} {why}")
    if args.json:
        print(json.dumps(report))
    return code
