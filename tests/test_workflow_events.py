"""The adapter interface every workflow manager goes through (yprov4wfs_bridge.events.WorkflowRecorder):
a new manager is one small module; runs find their tasks; the journal survives damage and hostile lines."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yprov4wfs_bridge import WorkflowError, build, read_bundle, validate_crate
from yprov4wfs_bridge.events import WorkflowRecorder

from conftest import assert_valid_prov, only_run_dir

TRACE = [  # a Nextflow trace file (trace.txt), as `nextflow run -with-trace` writes it
    {"task_id": "1", "process": "INDEX", "status": "COMPLETED", "exit": "0", "submit": "1700000000000",
     "start": "1700000001000", "complete": "1700000005000", "hash": "ab/12cd"},
    {"task_id": "2", "process": "QUANT", "status": "FAILED", "exit": "1", "submit": "1700000005500",
     "start": "1700000006000", "complete": "1700000007000", "hash": "ef/34gh"},
]


def nextflow_trace_adapter(trace: Path, directory: Path) -> WorkflowRecorder:
    """What a new manager's module looks like: read what the manager reports, call the recorder."""
    recorder = WorkflowRecorder(directory, "nf-pipeline", manager=("nextflow", "24.04"), root=trace.parent)
    rows = list(csv.DictReader(trace.open(), delimiter="\t"))
    recorder.workflow_started(when=min(int(r["submit"]) for r in rows) / 1000)
    for row in rows:
        task = f"{row['process']}-{row['task_id']}"
        recorder.task_submitted(task, name=row["process"], attributes={"hash": row["hash"]},
                                when=int(row["submit"]) / 1000)
        recorder.task_started(task, when=int(row["start"]) / 1000)
        if row["status"] == "COMPLETED":
            recorder.task_finished(task, when=int(row["complete"]) / 1000)
        else:
            recorder.task_failed(task, f"exit {row['exit']}", when=int(row["complete"]) / 1000)
    recorder.workflow_ended("FAILED" if any(r["status"] == "FAILED" for r in rows) else "FINISHED")
    return recorder


def test_a_new_manager_is_one_small_module(tmp_path):
    trace = tmp_path / "trace.txt"
    with trace.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(TRACE[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(TRACE)
    recorder = nextflow_trace_adapter(trace, tmp_path / "provenance")
    result = recorder.finish()
    doc = assert_valid_prov(result.bundle)
    tasks = {a["prov:label"]: a for a in doc["activity"].values() if a["prov:type"]["$"] == "yprov:Task"}
    assert tasks["INDEX-1"]["yprov:status"] == "FINISHED" and tasks["QUANT-2"]["yprov:status"] == "FAILED"
    assert tasks["INDEX-1"]["prov:startTime"].startswith("2023-11-14T22:13:21")
    assert doc["activity"]["wf:workflow"]["yprov:status"] == "FAILED"
    assert validate_crate(result.crate).passed


RUN = """
import sys, yprov4ml
with yprov4ml.start_run("www.example.org", "matched", sys.argv[1]):
    yprov4ml.log_metric("loss", 1.0, step=0)
"""


def start_task_with_a_run(recorder: WorkflowRecorder, tmp_path: Path, task: str, script: Path) -> None:
    recorder.task_submitted(task, command=f"{sys.executable} {script} {tmp_path / 'prov'}")
    recorder.task_started(task)


def test_runs_registered_without_a_task_are_matched_to_the_job_whose_command_ran_them(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RUN)
    recorder = WorkflowRecorder(tmp_path / "provenance", "clues", root=tmp_path)
    recorder.workflow_started()
    env = {**os.environ, **recorder.workflow_identity()}  # the workflow, not the task
    start_task_with_a_run(recorder, tmp_path, "other", tmp_path / "other.py")
    start_task_with_a_run(recorder, tmp_path, "train", script)
    subprocess.run([sys.executable, str(script), str(tmp_path / "prov")], env=env, check=True, timeout=120)
    recorder.task_finished("train")
    recorder.task_finished("other")
    recorder.workflow_ended()
    result = recorder.finish(crate=False, svg=False)
    _, documents = read_bundle(result.bundle)
    assert [(d.task_id, d.rank) for d in documents] == [("train", 0)] and result.gaps == []
    assert recorder.manifest["claims"][0]["how"] == "command line"


def test_a_run_that_two_jobs_could_have_run_is_a_gap_not_a_guess(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RUN)
    recorder = WorkflowRecorder(tmp_path / "provenance", "ambiguous", root=tmp_path)
    recorder.workflow_started()
    env = {**os.environ, **recorder.workflow_identity()}
    for task in ("seed-1", "seed-2"):  # the same command in two jobs running at once
        start_task_with_a_run(recorder, tmp_path, task, script)
    subprocess.run([sys.executable, str(script), str(tmp_path / "prov")], env=env, check=True, timeout=120)
    for task in ("seed-1", "seed-2"):
        recorder.task_finished(task)
    recorder.workflow_ended()
    result = recorder.finish(crate=False, svg=False)
    assert result.attachments.documents == []
    assert any("2 tasks could have run it (seed-1, seed-2)" in gap for gap in result.gaps), result.gaps


MANAGER_KILLED = """
import os, subprocess, sys
from pathlib import Path
from yprov4wfs_bridge.events import WorkflowRecorder

base, run_script = Path(sys.argv[1]), sys.argv[2]
recorder = WorkflowRecorder(base / "provenance", "killed", root=base)
recorder.workflow_started()
env = {**os.environ, **recorder.workflow_identity()}  # the workflow, not the job: as under Snakemake
for task in sys.argv[3:]:
    recorder.task_submitted(task, command=f"{sys.executable} {run_script} {base / 'prov'}")
    recorder.task_started(task)
subprocess.run([sys.executable, run_script, str(base / "prov")], env=env, timeout=120)
for task in sys.argv[3:]:
    recorder.task_finished(task)
os._exit(9)  # killed: no workflow_ended, no finish()
"""


def kill_a_manager_after_its_jobs(tmp_path: Path, run: str, tasks: list[str]) -> Path:
    """A manager that started ``tasks`` (each running ``run``), saw them end, and was then killed."""
    (tmp_path / "manager.py").write_text(MANAGER_KILLED)
    (tmp_path / "train.py").write_text(run)
    subprocess.run([sys.executable, str(tmp_path / "manager.py"), str(tmp_path), str(tmp_path / "train.py"), *tasks],
                   timeout=180)
    return tmp_path / "provenance"


def test_a_rebuild_after_the_manager_was_killed_nests_its_runs(tmp_path):
    directory = kill_a_manager_after_its_jobs(tmp_path, RUN, ["train"])
    result = build(directory, crate=False, svg=False)
    _, documents = read_bundle(result.bundle)
    assert [(d.task_id, d.rank) for d in documents] == [("train", 0)]
    assert result.gaps == ["the workflow never ended"]
    assert json.loads((directory / "workflow.json").read_text())["claims"][0]["task"] == "train"


def test_a_run_neither_placed_nor_ended_says_how_to_recover_it(tmp_path):
    killed_run = RUN.replace('yprov4ml.log_metric("loss", 1.0, step=0)',
                             'yprov4ml.log_metric("loss", 1.0, step=0); import os; os._exit(9)')
    directory = kill_a_manager_after_its_jobs(tmp_path, killed_run, ["seed-1", "seed-2"])
    gaps = build(directory, crate=False, svg=False).gaps
    unplaced = [g for g in gaps if "in which task is not known" in g]
    assert len(unplaced) == 1 and "2 tasks could have run it" in unplaced[0], gaps
    run_dir = only_run_dir(tmp_path / "prov", "matched")
    assert f"`yprov4ml recover {run_dir}`" in unplaced[0]


def test_a_damaged_or_hostile_journal_loses_only_the_bad_lines(tmp_path):
    recorder = WorkflowRecorder(tmp_path / "provenance", "hostile", root=tmp_path)
    (tmp_path / "in.txt").write_text("data")
    recorder.workflow_started()
    recorder.task_submitted("ok")
    recorder.task_started("ok")
    recorder.data_used("ok", "in.txt")
    recorder.task_finished("ok")
    recorder.workflow_ended()
    recorder.finish(build=False)
    journal = tmp_path / "provenance" / "events.jsonl"
    with journal.open("a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"event": "task_submitted", "time": 1.0, "task": "../../etc"}) + "\n")
        fh.write(json.dumps({"event": "data_used", "time": 1.0, "task": "ok", "id": "x", "path": "rel/path"}) + "\n")
        fh.write(json.dumps({"event": "task_noted", "time": 1.0, "task": "ok", "attributes": ["not", "a", "map"]})
                 + "\n")
        fh.write('{"event": "task_noted", "time": NaN, "task": "ok"}\n')
        fh.write(json.dumps({"event": "add_data", "time": 1.0, "task": "ok"}) + "\n")  # a helper, not an event
        fh.write(json.dumps({"event": "task_started", "time": 1.0, "task": "ok", "host": ["n1"]}) + "\n")
        fh.write(json.dumps({"event": "task_submitted", "time": 1.0, "task": "z", "depends_on": [{}]}) + "\n")
        fh.write(json.dumps({"event": "workflow_ended", "time": 1.0}) + "\n")
        fh.write('{"event": "task_finished", "time": 1.0, "task": "' + "a" * (2 << 20) + '"}\n')  # 2 MB line
        fh.write('{"event": "task_fini')  # torn by a kill mid-write: silently ignored
    result = build(tmp_path / "provenance", svg=False)
    skipped = [g for g in result.gaps if "skipped" in g]
    assert len(skipped) == 10, result.gaps
    assert any("unsafe" in g for g in skipped) and any("not absolute" in g for g in skipped)
    record = json.loads((tmp_path / "provenance" / "workflow.json").read_text())
    assert [t["id"] for t in record["tasks"]] == ["ok"] and record["tasks"][0]["status"] == "FINISHED"
    assert record["data"][0]["sha256"] is not None  # what was recorded before the damage is all there
    assert validate_crate(result.crate).passed


def test_data_outside_the_workflow_directory_is_described_not_copied(tmp_path):
    work, outside = tmp_path / "work", tmp_path / "elsewhere.txt"
    work.mkdir()
    outside.write_text("not ours to publish")
    recorder = WorkflowRecorder(tmp_path / "provenance", "outside", root=work)
    recorder.workflow_started()
    recorder.task_submitted("t")
    recorder.task_started("t")
    recorder.data_used("t", outside)
    recorder.task_finished("t")
    recorder.workflow_ended()
    result = recorder.finish(svg=False)
    crate = json.loads((result.crate / "ro-crate-metadata.json").read_text())
    described = [e for e in crate["@graph"] if e.get("name") == "elsewhere.txt" or
                 "elsewhere.txt" in str(e.get("description", ""))]
    assert described and all(e["@id"].startswith("#") for e in described)
    assert "outside the workflow's directory" in described[0]["description"]
    assert not list(result.crate.rglob("elsewhere.txt"))


@pytest.mark.parametrize("call, pattern", [
    (lambda r: r.task_submitted("../up"), "task id '../up' must use letters"),
    (lambda r: r.workflow_ended("DONE"), "FINISHED, FAILED or INTERRUPTED"),
])
def test_bad_calls_are_clear_errors(tmp_path, call, pattern):
    recorder = WorkflowRecorder(tmp_path / "provenance", "bad", root=tmp_path)
    recorder.workflow_started()
    with pytest.raises(WorkflowError, match=pattern):
        call(recorder)


def test_a_bad_workflow_id_suggests_a_safe_one(tmp_path):
    with pytest.raises(WorkflowError, match="for instance 'my_pipeline"):
        WorkflowRecorder(tmp_path, "my pipeline")


def test_where_a_try_ran_is_kept_when_its_worker_speaks_before_the_manager(tmp_path):
    """On a busy machine a Parsl worker's `task_noted` (its host) can reach the journal before the manager's
    `task_started`: the host belongs to the try that starts next, not to the one before or to nobody."""
    recorder = WorkflowRecorder(tmp_path / "provenance", "busy", root=tmp_path)
    recorder.workflow_started()
    recorder.task_submitted("train")
    journal = tmp_path / "provenance" / "events.jsonl"
    noted = {"event": "task_noted", "task": "train", "host": "worker-1", "attributes": {"worker_pid": 7}}
    with journal.open("a") as fh:
        fh.write(json.dumps({**noted, "time": time.time()}) + "\n")
    recorder.task_started("train")
    recorder.task_failed("train", "exit 3", will_retry=True)
    with journal.open("a") as fh:  # the retry's worker, again before the manager
        fh.write(json.dumps({**noted, "host": "worker-2", "time": time.time()}) + "\n")
    recorder.task_started("train")
    recorder.task_finished("train")
    recorder.workflow_ended()
    recorder.finish(build=False)
    build(tmp_path / "provenance", svg=False, crate=False)
    record = json.loads((tmp_path / "provenance" / "workflow.json").read_text())
    (task,) = record["tasks"]
    assert [(a["status"], a.get("host")) for a in task["attempts"]] == [("FAILED", "worker-1"), ("FINISHED", "worker-2")]
