"""Which job ran a run registered with a workflow but no task: from the clues the run left.

A manager that starts its jobs as children of one process (Snakemake) cannot
give each its own environment, so a run started in a job registers under the
workflow only, with its host, its batch job id, and its own and its parents'
command lines (``yprov4ml.parent.process_clues``). In this order of trust:

1. the batch job id (Slurm) equals the one an attempt of the task ran as;
2. a task's marker (e.g. Snakemake's ``--target-jobs 'rule:wildcards'``) is
   among the arguments of one of those command lines;
3. one of those command lines (two words at least) is part of the task's
   command (``mpiexec -n 2 python train.py`` holds ``python train.py``);
4. a single task was running, on that host, when the run started.

Several candidates are narrowed to those running when the run started; a
run still claimed by two tasks, or by none, is a gap the record states.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Iterator

from yprov4ml.parent import REGISTRY

SLACK_S = 5.0  # clocks of the nodes and of the manager differ a little
MAX_REGISTRY_BYTES = 1 << 30


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=False)
    except ValueError:  # unbalanced quotes: still words
        return command.split()


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return 0 < n <= len(haystack) and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _running(task: dict[str, Any], when: float, host: str | None = None, slack: float = 0.0) -> bool:
    for attempt in task.get("attempts", []):
        start, end = attempt.get("start_time"), attempt.get("end_time")
        if start is None or when < start - slack or (end is not None and when > end + slack):
            continue
        if host is None or attempt.get("host") in (None, host):
            return True
    return False


def _by_job_id(tasks: list[dict[str, Any]], clues: dict[str, Any]) -> list[dict[str, Any]]:
    ids = {str(clues[k]) for k in ("slurm_job_id", "pbs_jobid", "lsb_jobid") if clues.get(k)}
    return [t for t in tasks if ids & {str(a.get("executor_job_id")) for a in t.get("attempts", [])
                                       if a.get("executor_job_id")}]


def _by_marker(tasks: list[dict[str, Any]], commands: list[list[str]]) -> list[dict[str, Any]]:
    return [t for t in tasks if any(_contains(command, list(marker)) for marker in t.get("markers", [])
                                    for command in commands)]


def _by_command(tasks: list[dict[str, Any]], commands: list[list[str]]) -> list[dict[str, Any]]:
    """Tasks whose command holds the longest of the run's command lines that any task's command holds."""
    best: list[dict[str, Any]] = []
    best_length = 1  # one word (``python``) tells nothing
    for task in tasks:
        words = _tokens(task.get("command") or "")
        length = max((len(c) for c in commands if _contains(words, c)), default=0)
        if length > best_length:
            best, best_length = [task], length
        elif length == best_length and length > 1:
            best.append(task)
    return best


def candidates(tasks: list[dict[str, Any]], clues: dict[str, Any], when: float) -> tuple[list[dict[str, Any]], str]:
    """The tasks that may have run a run with these clues, and how they were found."""
    commands = [c for c in clues.get("commands", []) if isinstance(c, list) and all(isinstance(a, str) for a in c)]
    for how, found in (("batch job id", _by_job_id(tasks, clues)), ("job marker", _by_marker(tasks, commands)),
                       ("command line", _by_command(tasks, commands))):
        if found:
            return _at(found, when) or found, how
    host = clues.get("host") if isinstance(clues.get("host"), str) else None
    return _at(tasks, when, host), "the only task running then"


def _at(tasks: list[dict[str, Any]], when: float, host: str | None = None) -> list[dict[str, Any]]:
    """The tasks running at ``when``: by their recorded times, else allowing for clocks that differ a little."""
    return ([t for t in tasks if _running(t, when, host)] or
            [t for t in tasks if _running(t, when, host, SLACK_S)])


def _unclaimed_starts(workflow_dir: Path, execution_id: str) -> Iterator[dict[str, Any]]:
    registry = workflow_dir / REGISTRY
    if not registry.is_file() or registry.stat().st_size > MAX_REGISTRY_BYTES:
        return
    with open(registry, "rb") as fh:
        for raw in fh:
            try:
                event = json.loads(raw)
            except (ValueError, RecursionError):
                continue  # collect() reports damaged lines
            if (isinstance(event, dict) and event.get("event") == "start" and event.get("task_id") == ""
                    and event.get("execution_id") == execution_id and isinstance(event.get("clues"), dict)
                    and isinstance(event.get("run_id"), str) and isinstance(event.get("rank"), int)
                    and isinstance(event.get("time"), (int, float))):
                yield event


def claim_runs(workflow_dir: Path, manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``run_claimed`` events for the runs of this execution that registered without a task."""
    claims = []
    for event in _unclaimed_starts(workflow_dir, manifest.get("execution_id", "")):
        found, how = candidates(manifest["tasks"], event["clues"], event["time"])
        if len(found) == 1:
            claims.append(("run_claimed", {"run_id": event["run_id"], "rank": event["rank"],
                                           "task": found[0]["id"], "how": how}))
        else:
            names = ", ".join(t["id"] for t in found[:5]) or "none"
            claims.append(("run_unclaimed", {"run_id": event["run_id"], "rank": event["rank"],
                                             "why": f"{len(found)} tasks could have run it ({names})"}))
    return claims


def apply_claims(workflow_dir: Path, state: Any) -> None:
    """Add to a replayed workflow (``journal.Replay``) the claims of the runs not yet claimed."""
    claimed = {(c.get("run_id"), c.get("rank")) for c in state.manifest["claims"]}
    for kind, fields in claim_runs(workflow_dir, state.manifest):
        if (fields["run_id"], fields["rank"]) not in claimed:
            state.apply({"event": kind, "time": 0.0, **fields})
