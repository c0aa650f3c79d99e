"""Ranks and run ids from every launcher, real MPI ranks, the collection, and prov-merge."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import attributes, prov_type
from yprov4ml.distributed.ranks import RankInfo, detect_rank
from yprov4ml.distributed.run_id import agree_run_id
from yprov4ml.distributed.merge import MergeError, merge

from conftest import ROOT, assert_valid_prov

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich mpi4py)")
EXAMPLE = ROOT / "examples" / "distributed_train.py"


LAUNCHERS = [
    ("openmpi", {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
                 "PMIX_NAMESPACE": "prterun-node-123@1"}, RankInfo(3, 8, 1, "openmpi", "ompi-prterun-node-123@1")),
    ("mpich", {"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "2"}, RankInfo(2, 4, 2, "mpich", None)),
    ("intelmpi", {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0", "I_MPI_ROOT": "/opt/intel"},
     RankInfo(1, 2, 0, "intelmpi", None)),
    ("srun+pmi2", {"PMI_RANK": "5", "PMI_SIZE": "6", "MPI_LOCALRANKID": "1", "SLURM_PROCID": "5",
                   "SLURM_JOB_ID": "777", "SLURM_STEP_ID": "0"}, RankInfo(5, 6, 1, "mpich", "slurm777.0")),
    ("srun --mpi=pmi2, no Hydra", {"PMI_RANK": "3", "PMI_SIZE": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
                                   "SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0"}, RankInfo(3, 4, 1, "mpich", "slurm9.0")),
    ("pmix", {"PMIX_RANK": "4", "PMIX_SIZE": "16", "PMIX_LOCAL_RANK": "0", "PMIX_NAMESPACE": "ns1"},
     RankInfo(4, 16, 0, "pmix", "pmix-ns1")),
    ("torchrun", {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "job9"},
     RankInfo(1, 2, 1, "torchrun", "torchrun-job9")),
    ("slurm", {"SLURM_PROCID": "7", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3", "SLURM_JOB_ID": "4242",
               "SLURM_STEP_ID": "1"}, RankInfo(7, 8, 3, "slurm", "slurm4242.1")),
    ("sbatch script inside mpiexec", {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "1",
                                      "PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "3"},
     RankInfo(3, 4, 3, "mpich", "slurm1")),
    ("none", {"SLURM_JOB_ID": "1"}, RankInfo()),
]


@pytest.mark.parametrize("name,environ,expected", LAUNCHERS, ids=[n for n, _, _ in LAUNCHERS])
def test_rank_from_each_launcher(name, environ, expected):
    assert dataclasses.replace(detect_rank(environ), node="", node_index=None) == expected


@pytest.mark.parametrize("environ, node", [
    ({"SLURMD_NODENAME": "n2", "SLURM_NODEID": "1", "SLURM_PROCID": "3"}, ("n2", 1)),  # two slurmd on one host
    ({"RANK": "5", "WORLD_SIZE": "8", "GROUP_RANK": "2"}, (socket.gethostname(), 2)),  # torchrun's node rank
    ({"PMI_RANK": "1", "PMI_SIZE": "2"}, (socket.gethostname(), None)),  # Hydra says no node index
    ({"SLURM_NODEID": "not a number"}, (socket.gethostname(), None)),
])
def test_the_node_of_a_rank(environ, node):
    found = detect_rank(environ)
    assert (found.node, found.node_index) == node


def test_run_id_from_the_job_is_the_same_on_every_rank_and_differs_between_jobs():
    ids = {agree_run_id("exp", RankInfo(r, 4, r, "slurm", "slurm100.0"), None, 0, {}) for r in range(4)}
    assert ids == {"exp-slurm100.0"}
    assert agree_run_id("exp", RankInfo(0, 4, 0, "slurm", "slurm101.0"), None, 0, {}) != ids.pop()
    # a second run in the same job gets its own id
    assert agree_run_id("exp", RankInfo(0, 4, 0, "slurm", "slurm100.0"), None, 1, {}) == "exp-slurm100.0-1"
    assert agree_run_id("exp", RankInfo(2, 4), "given", 0, {}) == "given"
    assert agree_run_id("exp", RankInfo(2, 4), None, 0, {"YPROV4ML_RUN_ID": "from-env"}) == "from-env"


def test_no_job_id_and_no_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    with pytest.raises(yprov4ml.YProvError, match="cannot agree on a run id.*mpi4py.*run_id"):
        agree_run_id("exp", RankInfo(1, 4, 1, "mpich", None), None, 0, {})


def test_rank_argument_overrides(save_dir):
    with yprov4ml.start_run(experiment_name="over", provenance_save_dir=save_dir, rank=0,
                            collect_all_processes=True, run_id="r") as run:
        yprov4ml.log_metric("x", 1.0)
    assert run.prov_path.name == "prov.rank0.json"


def test_other_ranks_are_no_ops_by_default(save_dir, monkeypatch):
    for k, v in {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0"}.items():
        monkeypatch.setenv(k, v)
    with yprov4ml.start_run(experiment_name="quiet", provenance_save_dir=save_dir) as run:
        yprov4ml.log_param("a", 1)
        yprov4ml.log_metric("x", "not even a number")  # accepted and ignored, like every directive here
        yprov4ml.log_artifact("/nonexistent")
        yprov4ml.save_model_version(object(), "m")
        yprov4ml.log_system_metrics()
    assert isinstance(run, yprov4ml.api.NoOpRun)
    assert yprov4ml.end_run if yprov4ml.active_run() is None else False
    assert not save_dir.exists()


def _mpiexec(n: int, script: Path, *args: str, cwd: Path, timeout: float = 600, keep_going: bool = False,
             env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [MPIEXEC, *(["-disable-auto-cleanup"] if keep_going else []), "-n", str(n), sys.executable, str(script),
           *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    """The distributed example under a real `mpiexec -n 4`."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    cwd = tmp_path_factory.mktemp("mpi")
    done = _mpiexec(4, EXAMPLE, "--epochs", "2", "--samples", "1024", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (cwd / "prov" / "distributed").iterdir()
    return run_dir


@needs_mpi
def test_four_ranks_one_run_four_documents_and_a_collection(mpi_run):
    files = sorted(p.name for p in mpi_run.glob("prov.rank*.json"))
    assert files == [f"prov.rank{r}.json" for r in range(4)]
    views = [yprov4ml.load_run(mpi_run, rank=r) for r in range(4)]
    assert {v.run_id for v in views} == {mpi_run.name}
    assert [v.rank for v in views] == [0, 1, 2, 3] and {v.world_size for v in views} == {4}
    for r in range(4):
        assert_valid_prov(mpi_run / f"prov.rank{r}.json")
        assert (mpi_run / f"metrics.rank{r}.ymetric").is_file()
        assert (mpi_run / f"models/rank{r}/regressor.v2.pt").is_file()
    # every file of a rank carries the rank: no two ranks ever wrote the same file; the run's own files
    # (the collection, the model card) are written once, by rank 0, after every rank has ended
    card = (mpi_run / "model_card.md").read_text()
    assert "4 ranks" in card and all(f"PROV-JSON of rank {r}:" in card for r in range(4))
    for path in mpi_run.rglob("*"):
        if path.is_file() and path.name not in ("collection.json", "model_card.md"):
            assert any(f"rank{r}" in path.as_posix() for r in range(4)), path
    # gradients were averaged: all ranks end with the same model
    assert len({v.metric("val_loss", "validation").values[0] for v in views}) == 1
    doc = assert_valid_prov(mpi_run / "collection.json")
    job = doc["activity"]["run:distributed"]
    assert job["yprov:missing_ranks"] == "[]" and job["yprov:status"] == "FINISHED"
    members = [e for e in doc["entity"].values() if prov_type(e) == "yprov:RankDocument"]
    assert sorted(m["prov:location"] for m in members) == [f"prov.rank{r}.json" for r in range(4)]
    import hashlib
    for m in members:
        assert m["yprov:sha256"] == hashlib.sha256((mpi_run / m["prov:location"]).read_bytes()).hexdigest()
        assert m["yprov:node"] == socket.gethostname() and attributes(m)["node_index"] == 0  # Hydra: one host
    # rank 0 learnt the digests over MPI, not by polling the shared directory
    assert job["yprov:coordinated_by"] == "mpi" and json.loads(job["yprov:nodes"]) == [socket.gethostname()]
    assert views[0].run["node"] == socket.gethostname()


@needs_mpi
def test_rank_zero_does_not_wait_past_the_timeout_for_a_late_rank_over_mpi(tmp_path):
    done = _mpiexec(3, ROOT / "tests" / "scripts" / "late_rank.py", str(tmp_path / "prov"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    waited = {int(line.split()[1]): float(line.split()[4]) for line in done.stdout.splitlines()
              if line.startswith("rank ")}
    assert {0, 1} <= set(waited), done.stdout + done.stderr
    assert waited[0] < 6 and waited[1] < 6  # 2 s timeout, not the late rank's 10 s
    (run_dir,) = (tmp_path / "prov" / "late").iterdir()
    job = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert job["yprov:missing_ranks"] == "[2]" and job["yprov:coordinated_by"] == "mpi"
    assert yprov4ml.load_run(run_dir, rank=2).status == "FINISHED"  # its own record is whole, only late
    assert "pending" not in done.stderr  # no MPI request left behind
    # the merge finds the late rank's document and corrects the collection rank 0 wrote without it
    merged = subprocess.run([sys.executable, "-m", "yprov4ml.distributed.merge", str(run_dir), "-o",
                             str(tmp_path / "merged.json")], capture_output=True, text=True)
    assert merged.returncode == 0 and "ranks [2] came after rank 0 had listed them missing" in merged.stdout
    corrected = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert corrected["yprov:missing_ranks"] == "[]" and corrected["yprov:late_ranks"] == "[2]"
    assert corrected["yprov:status"] == "FINISHED" and corrected["yprov:coordinated_by"] == "mpi"


@needs_mpi
def test_prov_merge_of_real_ranks_keeps_every_value(mpi_run, tmp_path):
    out = tmp_path / "merged.json"
    done = subprocess.run([sys.executable, "-m", "yprov4ml.distributed.merge", str(mpi_run), "-o", str(out), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ranks"] == [0, 1, 2, 3]
    doc = assert_valid_prov(out)
    assert sorted(doc["bundle"]) == [f"merged:rank-{r}" for r in range(4)]
    for r in range(4):
        original = json.loads((mpi_run / f"prov.rank{r}.json").read_text())
        assert doc["bundle"][f"merged:rank-{r}"] == original  # every record of every rank, unchanged
    summary = doc["entity"]["merged:metric/training/loss"]
    per_rank = json.loads(summary["yprov:per_rank"])
    for r in range(4):
        series = yprov4ml.load_run(mpi_run, rank=r).metric("loss")
        assert per_rank[str(r)]["last"] == series.values[-1]
        assert per_rank[str(r)]["count"] == len(series)
        assert per_rank[str(r)]["min"] == min(series.values)
    mean = sum(per_rank[str(r)]["last"] for r in range(4)) / 4
    assert float(summary["yprov:mean_last"]["$"]) == pytest.approx(mean, rel=1e-15)


@needs_mpi
def test_collect_all_processes_false_records_rank_zero_only(tmp_path):
    done = _mpiexec(2, ROOT / "tests" / "scripts" / "rank_zero_only.py", str(tmp_path / "prov"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "prov" / "r0").iterdir()
    assert sorted(p.name for p in run_dir.glob("prov.rank*.json")) == ["prov.rank0.json"]
    assert not (run_dir / "collection.json").exists()
    assert "rank 1 noop" in done.stdout


def _slurm_like_tasks(tmp_path: Path, tasks: int, job: str, *args: str) -> list[subprocess.Popen]:
    """What `srun --kill-on-bad-exit=0 -n N` starts: N independent processes with Slurm's variables."""
    (tmp_path / "no-mpi").mkdir(exist_ok=True)
    (tmp_path / "no-mpi" / "mpi4py.py").write_text("raise ImportError('mpi4py hidden: srun without MPI')\n")
    procs = []
    for r in range(tasks):
        env = {**os.environ, "SLURM_PROCID": str(r), "SLURM_NTASKS": str(tasks), "SLURM_LOCALID": str(r),
               "SLURM_JOB_ID": job, "SLURM_STEP_ID": "0", "YPROV4ML_COLLECTION_TIMEOUT": "10",
               "PYTHONPATH": str(tmp_path / "no-mpi")}
        procs.append(subprocess.Popen([sys.executable, str(EXAMPLE), "--save-dir", str(tmp_path / "prov"), *args],
                                      cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def test_a_killed_rank_is_listed_missing_and_the_others_finish(tmp_path):
    procs = _slurm_like_tasks(tmp_path, 4, "555", "--epochs", "2", "--samples", "512", "--kill-rank", "2")
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, -9, 0], outputs
    run_dir = tmp_path / "prov" / "distributed" / "distributed-slurm555.0"
    for r in (0, 1, 3):
        assert yprov4ml.load_run(run_dir, rank=r).status == "FINISHED"
    assert not (run_dir / "prov.rank2.json").exists()
    job = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert job["yprov:missing_ranks"] == "[2]" and job["yprov:status"] == "INCOMPLETE"
    # the dead rank's record, up to its last flush
    from yprov4ml.tools.recover import recover

    assert list(recover(run_dir).recovered) == [2]
    dead = yprov4ml.load_run(run_dir, rank=2)
    assert dead.status == "KILLED" and dead.params["world_size"] == 4
    assert [m["version"] for m in dead.models] == [1]  # epoch 0's checkpoint, journaled when saved
    loss = dead.metric("loss")  # the points flushed before the kill: a gap-free prefix, possibly empty
    assert loss.steps == list(range(len(loss)))
    assert_valid_prov(run_dir / "prov.rank2.json")


def test_a_raising_rank_is_recorded_failed(tmp_path):
    procs = _slurm_like_tasks(tmp_path, 2, "556", "--epochs", "2", "--samples", "256", "--fail-rank", "1")
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 1], outputs
    assert "failed on purpose" in outputs[1][1]
    run_dir = tmp_path / "prov" / "distributed" / "distributed-slurm556.0"
    failed = yprov4ml.load_run(run_dir, rank=1)
    assert failed.status == "FAILED" and "failed on purpose" in failed.error
    job = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert json.loads(job["yprov:rank_status"]) == {"0": "FINISHED", "1": "FAILED"}
    assert job["yprov:missing_ranks"] == "[]" and job["yprov:status"] == "FAILED"


def test_slurm_like_environment_runs_the_hpc_example(tmp_path):
    """The sbatch script's training step, with the variables srun sets, 4 tasks (no MPI)."""
    procs = _slurm_like_tasks(tmp_path, 4, "31337", "--epochs", "1", "--samples", "256")
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    run_dir = tmp_path / "prov" / "distributed" / "distributed-slurm31337.0"
    assert sorted(p.name for p in run_dir.glob("prov.rank*.json")) == [f"prov.rank{r}.json" for r in range(4)]
    job = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert job["yprov:run_id"] == "distributed-slurm31337.0" and job["yprov:missing_ranks"] == "[]"
    assert yprov4ml.load_run(run_dir, rank=3).run["launcher"] == "slurm"


def test_hpc_scripts_are_valid_bash():
    for script in ("train.sbatch", "mpirun.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "hpc" / script)], check=True)


def test_rank_documents_come_in_rank_order(tmp_path):
    from yprov4ml.storage.layout import rank_documents

    for rank in (10, 2, 0, 1):
        (tmp_path / f"prov.rank{rank}.json").write_text("{}")
    (tmp_path / "prov.rankX.json").write_text("{}")  # not a rank document
    assert [p.name for p in rank_documents(tmp_path)] == ["prov.rank0.json", "prov.rank1.json", "prov.rank2.json",
                                                         "prov.rank10.json"]


@needs_mpi
def test_a_failing_mpi_rank_ends_the_job_at_once_and_every_rank_is_accounted_for(tmp_path):
    """Rank 2 raises while the others wait for it in an allreduce: the job ends in seconds, not at its time
    limit; rank 2's document says FAILED and the others' journals recover as KILLED."""
    import time

    from yprov4ml.tools.recover import recover

    started = time.monotonic()
    done = _mpiexec(4, EXAMPLE, "--epochs", "3", "--samples", "512", "--fail-rank", "2", cwd=tmp_path, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - started < 60, "the job waited for a rank that had failed"
    assert "rank 2 failed on purpose" in done.stderr
    (run_dir,) = (tmp_path / "prov" / "distributed").iterdir()
    assert yprov4ml.load_run(run_dir, rank=2).status == "FAILED"
    recovered, deadline = set(), time.monotonic() + 20
    while True:  # Hydra's SIGKILLed ranks may take a moment to be gone: until then recover leaves them alone
        result = recover(run_dir)
        recovered |= set(result.recovered)
        lingering = [r for r, why in result.skipped.items() if "still running" in why]
        if not lingering or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(recovered) == [0, 1, 3], result.skipped
    assert {yprov4ml.load_run(run_dir, rank=r).status for r in (0, 1, 3)} == {"KILLED"}


@needs_mpi
def test_prov_merge_of_a_shell_glob_leaves_the_collection_out(mpi_run, tmp_path):
    out = tmp_path / "merged.json"
    result = merge([str(mpi_run / "*.json")], out)  # what `prov-merge RUN_DIR/*.json` hands over
    assert result.ranks == [0, 1, 2, 3]
    with pytest.raises(MergeError, match="give the run directory"):
        merge([mpi_run / "collection.json"], tmp_path / "again.json")


@needs_mpi
def test_reproduce_keeps_the_launcher_of_a_distributed_run(mpi_run):
    from yprov4ml.tools.reproduce import recipe

    plan = recipe(mpi_run)
    assert plan.command[:3] == ["mpiexec", "-n", "4"] and plan.command[4].endswith("distributed_train.py")


def _git_work_tree(where: Path) -> str:
    """A one-commit git work tree holding the shared-capture script; its commit."""
    where.mkdir()
    shutil.copy(ROOT / "tests" / "scripts" / "shared_capture.py", where / "train.py")
    git = ["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return subprocess.run([*git[:3], "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


@needs_mpi
def test_rank_zero_lists_the_packages_and_asks_git_once_for_every_rank(tmp_path):
    commit = _git_work_tree(tmp_path / "code")
    done = subprocess.run([MPIEXEC, "-n", "3", sys.executable, "train.py", str(tmp_path / "prov")],
                          cwd=tmp_path / "code", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "prov" / "capture").iterdir()
    assert (run_dir / ".capture.rank0.json").is_file()
    views = [yprov4ml.load_run(run_dir, rank=r) for r in range(3)]
    packages = [json.loads(v.environment["packages"]) for v in views]
    assert any(p.startswith("yprov4ml==") for p in packages[0]) and packages[1] == packages[2] == packages[0]
    assert "captured_by_rank" not in views[0].environment and "captured_by_rank" not in views[0].source
    for view in views[1:]:
        assert view.environment["captured_by_rank"] == 0 and view.source["captured_by_rank"] == 0
        assert view.source["git_commit"] == commit and view.source["git_dirty"] is False
        assert view.source["script"] == str((tmp_path / "code" / "train.py").resolve())
        assert view.environment["python_version"] == views[0].environment["python_version"]
    for r in range(3):
        assert_valid_prov(run_dir / f"prov.rank{r}.json")


@needs_mpi
def test_a_rank_with_another_installation_lists_its_own_packages(tmp_path):
    """MPMD: rank 1 imports from one more directory (another node's installation, as far as it can tell)."""
    extra = tmp_path / "site"
    (extra / "extra_pkg-1.0.dist-info").mkdir(parents=True)
    script = str(ROOT / "tests" / "scripts" / "shared_capture.py")
    done = subprocess.run([MPIEXEC, "-n", "1", sys.executable, script, str(tmp_path / "prov"), ":",
                           "-n", "1", "-env", "PYTHONPATH", str(extra), sys.executable, script, str(tmp_path / "prov")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "prov" / "capture").iterdir()
    zero, one = (yprov4ml.load_run(run_dir, rank=r) for r in range(2))
    assert "captured_by_rank" not in one.environment
    assert "extra-pkg==1.0" in json.loads(one.environment["packages"])
    assert "extra-pkg==1.0" not in json.loads(zero.environment["packages"])


@needs_mpi
@pytest.mark.parametrize("streamed", [False, True], ids=["parsed", "streamed"])
def test_a_merged_record_is_read_reported_and_published_like_its_run(mpi_run, tmp_path, monkeypatch, streamed):
    from yprov4ml.prov import reader
    from yprov4ml.publish.crate_check import validate_crate
    from yprov4ml.publish.run_crate import build_run_crate
    from yprov4ml.tools.report import write_report

    merged = tmp_path / "elsewhere" / "merged.json"  # not in the run directory: its bundles say where that is
    merged.parent.mkdir()
    merge([mpi_run], merged)
    if streamed:  # as a record of thousands of ranks is read: one bundle at a time
        monkeypatch.setattr(reader, "STREAM_BYTES", 1024)
    for r in range(4):
        view, original = yprov4ml.load_run(merged, rank=r), yprov4ml.load_run(mpi_run, rank=r)
        assert (view.rank, view.run_id, view.run_dir, view.status) == (r, original.run_id, mpi_run, "FINISHED")
        assert view.metric("loss").values == original.metric("loss").values and view.params == original.params
    html = write_report([merged], tmp_path / "report.html").read_text()
    assert mpi_run.name in html and "loss" in html
    crate = build_run_crate(merged, tmp_path / "crate")
    graph = {e["@id"]: e for e in json.loads((crate / "ro-crate-metadata.json").read_text())["@graph"]}
    assert (crate / "merged.json").read_bytes() == merged.read_bytes()
    assert graph["merged.json"]["about"] == [{"@id": f"#rank-{r}"} for r in range(4)]
    assert all(f"prov.rank{r}.json" in graph for r in range(4))
    assert validate_crate(crate, "REQUIRED", "process-run-crate-0.5").passed


@needs_mpi
def test_ranks_beyond_a_directory_s_share_lie_in_ranks_directories_and_read_as_one_run(tmp_path):
    """As 65,536 ranks would spread over 66 directories of 1,000: here 2 ranks per directory, 5 ranks."""
    done = _mpiexec(5, ROOT / "tests" / "scripts" / "shared_capture.py", str(tmp_path / "prov"), cwd=tmp_path,
                    env={"YPROV4ML_RANKS_PER_DIRECTORY": "2"})
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "prov" / "capture").iterdir()
    assert sorted(p.name for p in run_dir.glob("*.rank*") if not p.name.startswith(".")) == sorted(
        f"{kind}.rank{r}.{ext}" for r in (0, 1) for kind, ext in (("prov", "json"), ("journal", "jsonl"),
                                                                   ("metrics", "ymetric")))
    for first, ranks in (("2-3", (2, 3)), ("4-5", (4,))):
        assert sorted(p.name for p in (run_dir / "ranks" / first).iterdir()) == sorted(
            f"{kind}.rank{r}.{ext}" for r in ranks for kind, ext in (("prov", "json"), ("journal", "jsonl"),
                                                                      ("metrics", "ymetric")))
    collection = assert_valid_prov(run_dir / "collection.json")
    assert json.loads(collection["activity"]["run:distributed"]["yprov:missing_ranks"]) == []
    locations = sorted(e["prov:location"] for e in collection["entity"].values() if prov_type(e) == "yprov:RankDocument")
    assert locations == ["prov.rank0.json", "prov.rank1.json", "ranks/2-3/prov.rank2.json",
                         "ranks/2-3/prov.rank3.json", "ranks/4-5/prov.rank4.json"]
    # read back without the variable: each rank found where it lies, its metric file beside it
    for r in range(5):
        view = yprov4ml.load_run(run_dir, rank=r)
        assert view.rank == r and view.run_dir == run_dir and view.metric("loss").values[-1] == 0.2
    result = merge([run_dir], tmp_path / "merged.json")
    assert result.ranks == [0, 1, 2, 3, 4]
    (run_dir / "ranks" / "4-5" / "prov.rank4.json").unlink()  # as if rank 4 had been killed before its end
    from yprov4ml.tools.recover import recover

    assert list(recover(run_dir).recovered) == [4]
    assert yprov4ml.load_run(run_dir, rank=4).metric("loss").values[-1] == 0.2
    checked = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "validate", str(run_dir)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.count("valid PROV-JSON") == 6, checked.stdout + checked.stderr
    listed = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "runs", str(tmp_path / "prov")],
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "5 ranks" in listed.stdout, listed.stdout + listed.stderr
