"""Snakemake and Parsl pipelines recorded at both levels, with real Snakemake, real Parsl, real MPI, real Slurm.

`snakemake --logger yprov4wfs` and Parsl's `record(...)` hook turn the managers' own events into the
workflow record; the yprov4ml runs started in their jobs (directly, under mpiexec, under srun) attach to
their jobs' tasks; bundle, graph and crate are written at the end, failed, retried or interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yprov4wfs_bridge import read_bundle, validate_crate

from conftest import ROOT, assert_valid_prov, slurm_diagnostics

pytest.importorskip("snakemake")
BIN = Path(sys.executable).parent
SNAKEFILE = ROOT / "examples" / "snakemake" / "Snakefile"
METADATA = ROOT / "examples" / "yprov4ml.toml"
FAST_SLURM = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
              "--seconds-between-status-checks", "2", "--default-resources", "slurm_partition=debug", "runtime=8",
              "mem_mb=500", "--latency-wait", "10"]


def environment(extra: dict | None = None) -> dict:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "MPIR_CVAR_CH4_NUM_VCIS": "1",
            **(extra or {})}


def snakemake(workdir: Path, *args: str, snakefile: Path = SNAKEFILE, env: dict | None = None,
              timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "snakemake"), "-s", str(snakefile), "-d", str(workdir), "--cores", "2",
                           "--logger", "yprov4wfs", "--logger-yprov4wfs-directory", str(workdir / "provenance"),
                           *args], capture_output=True, text=True, timeout=timeout, env=env or environment())
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def manifest(directory: Path) -> dict:
    return json.loads((directory / "workflow.json").read_text())


def tasks_by_name(record: dict) -> dict[str, dict]:
    return {t["name"]: t for t in record["tasks"]}


def runs_under(bundle: Path) -> dict[str, list[tuple[str, int]]]:
    """Task id → (run id, rank) of every rank document nested under it in the multi-level bundle."""
    _, documents = read_bundle(bundle)
    out: dict[str, list[tuple[str, int]]] = {}
    for doc in documents:
        out.setdefault(doc.task_id, []).append((doc.run_id, doc.rank))
    return {k: sorted(v) for k, v in out.items()}


def assert_publishable(crate: Path, severities=("REQUIRED", "RECOMMENDED")) -> None:
    for profile in ("provenance-run-crate-0.5", "workflow-ro-crate-1.0"):
        for severity in severities:
            report = validate_crate(crate, severity, profile)
            assert report.passed, (profile, severity, report.issues)


@pytest.fixture(scope="module")
def snakemake_pipeline(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("snakemake-pipeline")
    done = snakemake(workdir, "--logger-yprov4wfs-metadata", str(METADATA))
    return workdir, done


def test_snakemake_finds_the_plugin_and_its_settings():
    done = subprocess.run([str(BIN / "snakemake"), "--help"], capture_output=True, text=True, timeout=120,
                          env=environment())
    assert "--logger-yprov4wfs-directory" in done.stdout and "--logger-yprov4wfs-metadata" in done.stdout


def test_every_snakemake_job_is_a_task_with_its_files_command_and_resources(snakemake_pipeline):
    workdir, done = snakemake_pipeline
    record = manifest(workdir / "provenance")
    assert record["status"] == "FINISHED" and record["id"] == workdir.name  # the working directory's name
    tasks = tasks_by_name(record)
    assert set(tasks) == {"make_data", "preprocess", "train", "evaluate"}
    assert json.loads(record["attributes"]["targets"])[0]["rule"] == "all"  # runs nothing: the workflow's target
    train = tasks["train"]
    assert train["status"] == "FINISHED" and train["start_time"] < train["end_time"]
    assert train["command"].startswith("mpiexec -n 2 ") and "distributed_train.py" in train["command"]
    assert train["attributes"]["rule"] == "train" and train["attributes"]["threads"] == 2
    assert json.loads(train["attributes"]["resources"])["mem_mb"] == 2000
    data = {d["id"]: d for d in record["data"]}
    model = data[train["outputs"][0]]
    assert model["path"] == str(workdir / "results" / "model.pt")
    assert model["sha256"] == hashlib.sha256((workdir / "results" / "model.pt").read_bytes()).hexdigest()
    assert model["size"] == (workdir / "results" / "model.pt").stat().st_size
    assert {data[d]["role"] for d in train["outputs"]} == {"output", "log"}  # logs/train.log, with its digest
    assert [data[d]["path"] for d in train["inputs"]] == [str(workdir / "data" / "train.pt")]
    agents = {a["name"]: a for a in record["agents"]}
    assert agents["snakemake"]["kind"] == "SoftwareAgent" and agents["snakemake"]["version"].startswith("9.")
    assert any(a["kind"] == "Person" for a in record["agents"])
    assert "yprov4wfs: workflow record in" in done.stderr


def test_snakemake_dependencies_and_nested_runs_are_in_the_bundle(snakemake_pipeline):
    workdir, _ = snakemake_pipeline
    bundle = workdir / "provenance" / "bundle.prov.json"
    doc = assert_valid_prov(bundle)
    tasks = tasks_by_name(manifest(workdir / "provenance"))
    informed = {(r["prov:informed"], r["prov:informant"]) for r in doc["wasInformedBy"].values()}
    for later, earlier in (("preprocess", "make_data"), ("train", "preprocess"), ("evaluate", "train"),
                           ("evaluate", "preprocess")):
        assert (f"wf:task/{tasks[later]['id']}", f"wf:task/{tasks[earlier]['id']}") in informed
    nested = runs_under(bundle)
    train_runs = nested[tasks["train"]["id"]]
    assert [rank for _, rank in train_runs] == [0, 1] and len({run for run, _ in train_runs}) == 1  # mpiexec
    assert len(nested[tasks["evaluate"]["id"]]) == 1 and set(nested) == {tasks["train"]["id"],
                                                                        tasks["evaluate"]["id"]}
    snapshot = next((workdir / "prov" / "evaluate").glob("*/source/rank0/files"))
    copied = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
    assert copied == {"examples/pipeline_steps.py"}  # the step's own code; the recorder is in the environment
    claims = manifest(workdir / "provenance")["claims"]
    assert {c["how"] for c in claims} == {"command line"} and len(claims) == 3
    assert json.loads(doc["activity"]["wf:workflow"].get("yprov:gaps", "[]")) == []


def test_the_snakemake_crate_is_valid_with_metadata(snakemake_pipeline):
    workdir, _ = snakemake_pipeline
    assert_publishable(workdir / "provenance" / "crate")
    assert (workdir / "provenance" / ("graph.svg" if (workdir / "provenance" / "graph.svg").exists()
                                      else "graph.dot")).stat().st_size > 0


FLAKY = """
rule all:
    input: "flaky.txt", "broken.txt", "after_broken.txt"

rule flaky:
    output: "flaky.txt"
    retries: 1
    log: "logs/flaky.log"
    shell: "if [ ! -e tried ]; then touch tried; echo first try fails > {log}; exit 3; fi; echo ok > {output}"

rule broken:
    output: "broken.txt"
    log: "logs/broken.log"
    shell: "echo about to fail > {log}; exit 7"

rule after_broken:
    input: "broken.txt"
    output: "after_broken.txt"
    shell: "cp {input} {output}"
"""


def test_failed_and_retried_snakemake_jobs_are_recorded_and_the_crate_stays_valid(tmp_path):
    (tmp_path / "Snakefile").write_text(FLAKY)
    done = snakemake(tmp_path, "--keep-going", snakefile=tmp_path / "Snakefile", check=False)
    assert done.returncode != 0
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    assert record["status"] == "FAILED" and "broken" in record["error"]
    flaky = tasks["flaky"]
    assert flaky["status"] == "FINISHED" and [a["status"] for a in flaky["attempts"]] == ["FAILED", "FINISHED"]
    assert "exit status 3" in flaky["attempts"][0]["error"]
    broken = tasks["broken"]
    assert broken["status"] == "FAILED" and "exit status 7" in broken["error"]
    logs = {d["path"]: d for d in record["data"] if d["role"] == "log"}
    assert logs[str(tmp_path / "logs" / "broken.log")]["size"] == len("about to fail\n")  # a failed job's log
    assert "after_broken" not in tasks  # never started: Snakemake never ran it
    doc = assert_valid_prov(tmp_path / "provenance" / "bundle.prov.json")
    attempts = [a for a in doc["activity"].values() if a["prov:type"]["$"] == "yprov:TaskAttempt"]
    assert sorted(a["yprov:status"] for a in attempts) == ["FAILED", "FINISHED"]
    assert_publishable(tmp_path / "provenance" / "crate", severities=("REQUIRED",))


RUN_AND_SCRIPT = """
rule all:
    input: "a.txt", "b.txt"

rule in_python:
    output: "a.txt"
    run:
        import yprov4ml
        with yprov4ml.start_run("www.example.org", "in_python", "prov"):
            yprov4ml.log_metric("loss", 1.0, step=0)
        open(output[0], "w").write("a")

rule in_script:
    output: "b.txt"
    script: "step.py"
"""
STEP = """
import yprov4ml
with yprov4ml.start_run("www.example.org", "in_script", "prov"):
    yprov4ml.log_metric("loss", 2.0, step=0)
open(snakemake.output[0], "w").write("b")
"""


def test_runs_in_run_blocks_and_scripts_find_their_jobs(tmp_path):
    (tmp_path / "Snakefile").write_text(RUN_AND_SCRIPT)
    (tmp_path / "step.py").write_text(STEP)
    snakemake(tmp_path, "--cores", "1", snakefile=tmp_path / "Snakefile")
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    how = {c["task"]: c["how"] for c in record["claims"]}
    # a run: block runs in a Snakemake process named after its job; a script: by the only job running then
    assert how == {tasks["in_python"]["id"]: "job marker", tasks["in_script"]["id"]: "the only task running then"}
    nested = runs_under(tmp_path / "provenance" / "bundle.prov.json")
    assert len(nested[tasks["in_python"]["id"]]) == 1 and len(nested[tasks["in_script"]["id"]]) == 1


SLOW = """
rule all:
    input: "slow.txt"

rule quick:
    output: "quick.txt"
    shell: "echo quick > {output}"

rule slow:
    input: "quick.txt"
    output: "slow.txt"
    shell: "sleep 60; cp {input} {output}"
"""


def start_and_wait_for(tmp_path: Path, task: str) -> subprocess.Popen:
    (tmp_path / "Snakefile").write_text(SLOW)
    process = subprocess.Popen([str(BIN / "snakemake"), "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path),
                                "--cores", "1", "--logger", "yprov4wfs", "--logger-yprov4wfs-directory",
                                str(tmp_path / "provenance")], env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    events = tmp_path / "provenance" / "events.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if events.exists() and any(json.loads(line).get("event") == "task_started" and
                                   json.loads(line).get("task", "").startswith(task)
                                   for line in events.read_text().splitlines()):
            return process
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"task {task} never started")


def test_a_snakemake_workflow_interrupted_by_ctrl_c_says_so(tmp_path):
    process = start_and_wait_for(tmp_path, "slow")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    assert record["status"] == "INTERRUPTED", stderr[-2000:]
    assert tasks["slow"]["status"] == "INTERRUPTED" and tasks["quick"]["status"] == "FINISHED"
    quick_output = next(d for d in record["data"] if d["path"].endswith("quick.txt"))
    assert quick_output["sha256"] == hashlib.sha256(b"quick\n").hexdigest()  # what was recorded stays
    assert_valid_prov(tmp_path / "provenance" / "bundle.prov.json")
    assert_publishable(tmp_path / "provenance" / "crate", severities=("REQUIRED",))


def test_a_killed_snakemake_loses_nothing_the_bridge_rebuilds_the_record(tmp_path):
    process = start_and_wait_for(tmp_path, "slow")
    process.kill()  # SIGKILL: no handler runs, the plug-in never closes
    process.communicate(timeout=60)
    subprocess.run(["pkill", "-f", f"sleep 60; cp {tmp_path}"], check=False)
    directory = tmp_path / "provenance"
    done = subprocess.run([str(BIN / "yprov4wfs-bridge"), "build", str(directory), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert "the workflow never ended" in summary["gaps"]
    assert any("slow" in gap and "never ended" in gap for gap in summary["gaps"])
    tasks = tasks_by_name(manifest(directory))
    assert tasks["quick"]["status"] == "FINISHED" and tasks["slow"]["status"] == "RUNNING"
    assert_valid_prov(directory / "bundle.prov.json")
    assert validate_crate(directory / "crate").passed


def test_snakemake_with_the_slurm_executor_nests_every_rank_under_its_job(slurm, tmp_path):
    env = environment({"SLURM_CONF": slurm["SLURM_CONF"]})
    done = snakemake(tmp_path, "--executor", "slurm", "--jobs", "4", *FAST_SLURM, "--set-resources", "train:nodes=2",
                     "--config", "mpi=srun --mpi=pmi2 --overcommit", env=env, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(done.stderr[-3000:] + slurm_diagnostics(env, tmp_path / "logs" / "train.log",
                                                            *(tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")))
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    assert record["status"] == "FINISHED"
    for name in ("make_data", "preprocess", "train", "evaluate"):
        attempt = tasks[name]["attempts"][-1]
        assert attempt["executor_job_id"].isdigit(), tasks[name]  # the Slurm job that ran it
        assert tasks[name]["attributes"]["slurm_log"].endswith(f"{attempt['executor_job_id']}.log")
    nested = runs_under(tmp_path / "provenance" / "bundle.prov.json")
    assert [rank for _, rank in nested[tasks["train"]["id"]]] == [0, 1]
    assert len(nested[tasks["evaluate"]["id"]]) == 1
    assert {c["how"] for c in record["claims"]} == {"batch job id"}
    _, documents = read_bundle(tmp_path / "provenance" / "bundle.prov.json")
    assert {d.run["node"] for d in documents if d.task_id == tasks["train"]["id"]} == {"n1", "n2"}  # across nodes
    assert validate_crate(tmp_path / "provenance" / "crate").passed


SCANCELLED = """
rule all:
    input: "slow.txt"

rule slow:
    output: "slow.txt"
    shell: "sleep 120; touch {output}"
"""


def test_a_slurm_job_ended_by_scancel_is_a_failed_task(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(SCANCELLED)
    env = environment({"SLURM_CONF": slurm["SLURM_CONF"]})
    process = subprocess.Popen([str(BIN / "snakemake"), "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path),
                                "--executor", "slurm", "--jobs", "1", *FAST_SLURM, "--logger", "yprov4wfs",
                                "--logger-yprov4wfs-directory", str(tmp_path / "provenance")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events = tmp_path / "provenance" / "events.jsonl"
    job, deadline = None, time.monotonic() + 120
    while job is None and time.monotonic() < deadline:
        if events.exists():
            job = next((json.loads(line)["executor_job_id"] for line in events.read_text().splitlines()
                        if json.loads(line).get("executor_job_id")), None)
        time.sleep(0.2)
    assert job, "the job was never submitted to Slurm"
    time.sleep(3)
    subprocess.run(["scancel", job], env=env, check=True, timeout=60)
    _, stderr = process.communicate(timeout=300)
    record = manifest(tmp_path / "provenance")
    slow = tasks_by_name(record)["slow"]
    assert record["status"] == "FAILED" and slow["status"] == "FAILED", stderr[-2000:]
    assert "CANCELLED" in slow["error"] and slow["attempts"][-1]["executor_job_id"] == job
    assert validate_crate(tmp_path / "provenance" / "crate").passed


def parsl_pipeline(out: Path, *args: str, env: dict | None = None, timeout: float = 600):
    pytest.importorskip("parsl")
    return subprocess.run([sys.executable, str(ROOT / "examples" / "parsl_pipeline.py"), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, env=env or environment())


def test_the_parsl_pipeline_is_recorded_at_both_levels(tmp_path):
    done = parsl_pipeline(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    directory = tmp_path / "provenance"
    record = manifest(directory)
    tasks = tasks_by_name(record)
    assert record["status"] == "FINISHED" and set(tasks) == {"make_data", "preprocess", "train", "evaluate"}
    assert tasks["train"]["attributes"]["app_kind"] == "bash_app"
    assert tasks["evaluate"]["attributes"]["app_kind"] == "python_app"
    assert sorted(tasks["evaluate"]["depends_on"]) == sorted([tasks["train"]["id"], tasks["preprocess"]["id"]])
    data = {d["id"]: d for d in record["data"]}
    roles = {data[d]["role"] for d in tasks["train"]["outputs"]}
    assert roles == {"output", "stdout", "stderr"}
    report = next(d for d in record["data"] if d["path"].endswith("report.txt"))
    assert report["sha256"] == hashlib.sha256((tmp_path / "results" / "report.txt").read_bytes()).hexdigest()
    assert tasks["train"]["attempts"][0]["host"]  # the worker said where it ran
    doc = assert_valid_prov(directory / "bundle.prov.json")
    informed = {(r["prov:informed"], r["prov:informant"]) for r in doc["wasInformedBy"].values()}
    assert (f"wf:task/{tasks['train']['id']}", f"wf:task/{tasks['preprocess']['id']}") in informed
    nested = runs_under(directory / "bundle.prov.json")
    assert [rank for _, rank in nested[tasks["train"]["id"]]] == [0, 1]  # both MPI ranks of the bash_app
    assert len(nested[tasks["evaluate"]["id"]]) == 1  # the run started inside the python_app
    assert record["claims"] == []  # Parsl hands each task its identity: nothing to guess
    assert_publishable(directory / "crate")


FLAKY_PARSL = """
import sys
from pathlib import Path

import parsl
from parsl.app.app import python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

from yprov4wfs_bridge.managers.parsl import record


@python_app
def flaky(marker):
    from pathlib import Path
    if not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("first try fails")
    return 1


@python_app
def broken():
    raise ValueError("always fails")


@python_app
def after(value):
    return value + 1


out = Path(sys.argv[1])
config = Config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=1,
                                                  provider=LocalProvider(init_blocks=1, max_blocks=1))],
                retries=1, run_dir=str(out / "runinfo"))
with parsl.load(config):
    hook = record(out / "provenance", "flaky-parsl")
    ok = flaky(str(out / "marker"))
    bad = after(broken())
    print(ok.result())
    try:
        bad.result()
    except Exception as exc:
        print("failed as expected:", type(exc).__name__)
"""


def test_parsl_retries_failures_and_tasks_never_run_are_recorded(tmp_path):
    pytest.importorskip("parsl")
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_PARSL)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=environment(), cwd=tmp_path)
    assert done.returncode == 0 and "failed as expected" in done.stdout, done.stderr[-3000:]
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    assert record["status"] == "FAILED"
    assert [a["status"] for a in tasks["flaky"]["attempts"]] == ["FAILED", "FINISHED"]
    assert "first try fails" in tasks["flaky"]["attempts"][0]["error"] and tasks["flaky"]["status"] == "FINISHED"
    assert tasks["broken"]["status"] == "FAILED" and len(tasks["broken"]["attempts"]) == 2  # retried once, in vain
    assert tasks["after"]["status"] == "NOT_RUN" and tasks["after"]["depends_on"] == [tasks["broken"]["id"]]
    assert_valid_prov(tmp_path / "provenance" / "bundle.prov.json")
    assert validate_crate(tmp_path / "provenance" / "crate").passed


def test_parsl_with_the_slurm_provider_nests_the_runs_of_its_workers(slurm, tmp_path):
    env = environment({"SLURM_CONF": slurm["SLURM_CONF"]})
    done = parsl_pipeline(tmp_path, "--slurm", "--launch", "srun --mpi=pmi2 --overcommit -n 2", env=env,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = manifest(tmp_path / "provenance")
    tasks = tasks_by_name(record)
    assert record["status"] == "FINISHED"
    nested = runs_under(tmp_path / "provenance" / "bundle.prov.json")
    _, documents = read_bundle(tmp_path / "provenance" / "bundle.prov.json")
    train = [d for d in documents if d.task_id == tasks["train"]["id"]]
    assert [d.rank for d in train] == [0, 1] and train[0].run_id.startswith("train-slurm")  # a Slurm job step
    assert len(nested[tasks["evaluate"]["id"]]) == 1
    assert {d.run["node"] for d in documents} <= {"n1", "n2"}  # every run ran on a Slurm node, in a worker
    assert validate_crate(tmp_path / "provenance" / "crate").passed
