"""The hpc/ scripts under a real two-node Slurm cluster (hpc/local_slurm.sh: nodes n1 and n2 on this host):
sbatch across both nodes, job arrays, scancel, node-local staging."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type

from conftest import ROOT, assert_valid_prov, slurm_diagnostics

def sbatch(env: dict, script: str, *options: str, wait: bool = True, **variables: str) -> str:
    # --time: a job that hangs is ended by Slurm, not left behind by the test suite
    done = subprocess.run(["sbatch", "--parsable", "--overcommit", "--time=8", *(["--wait"] if wait else []), *options,
                           str(ROOT / "hpc" / script)], env={**env, **variables}, capture_output=True, text=True,
                          timeout=600, cwd=variables.get("cwd", env["PROJECT_DIR"]))
    job = done.stdout.strip().split(";")[0]
    if done.returncode != 0:
        outputs = [Path(o.split("=", 1)[1].replace("%j", job)) for o in options if o.startswith("--output=")]
        pytest.fail(f"sbatch {script} (job {job}) ended {done.returncode}: {done.stderr}\n"
                    + slurm_diagnostics({**env, **variables}, *outputs))
    return job


def test_train_sbatch_four_tasks_on_two_nodes(slurm, tmp_path):
    save = tmp_path / "prov"
    job = sbatch(slurm, "train.sbatch", "--nodes=2", f"--output={tmp_path}/job-%j.out", YPROV4ML_SAVE_DIR=str(save),
                 TRAIN_ARGS="--epochs 2 --samples 512 --energy", EXPERIMENT="slurmtrain")
    run_dir = save / "slurmtrain" / f"slurmtrain-slurm{job}.0"
    log = next(tmp_path.glob("job-*.out")).read_text()
    assert sorted(p.name for p in run_dir.glob("prov.rank*.json")) == [f"prov.rank{r}.json" for r in range(4)], log
    views = [yprov4ml.load_run(run_dir, rank=r) for r in range(4)]
    assert {v.status for v in views} == {"FINISHED"} and {v.run["launcher"] for v in views} == {"mpich"}
    assert len({v.metric("val_loss", "validation").values[0] for v in views}) == 1  # real MPI allreduce, across nodes
    # every rank names its node; energy is measured once per node, by its local rank 0
    assert [(v.run["node"], v.run["node_index"], v.run["local_rank"]) for v in views] == \
        [("n1", 0, 0), ("n1", 0, 1), ("n2", 1, 0), ("n2", 1, 1)]
    measured = [v.rank for v in views if ("energy_consumed_kwh", "training") in v.metrics]
    assert measured == [0, 2] and all(v.run["energy_measured_by"] == "local rank 0 of this node"
                                      for v in views if v.rank in (1, 3))
    collection = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert collection["yprov:missing_ranks"] == "[]" and collection["yprov:coordinated_by"] == "mpi"
    per_node = json.loads(collection["yprov:energy_by_node"])
    assert set(per_node) == {"n1", "n2"}
    assert per_node["n2"]["total_energy_consumed_kwh"] == views[2].run["total_energy_consumed_kwh"]
    total = float(collection["yprov:total_energy_consumed_kwh"]["$"])
    assert total == pytest.approx(sum(node["total_energy_consumed_kwh"] for node in per_node.values()))
    merged = assert_valid_prov(run_dir / "merged.json")
    assert len(merged["bundle"]) == 4
    assert json.loads(merged["activity"]["merged:distributed"]["yprov:energy_by_node"]) == per_node


def test_ranks_stage_on_their_nodes_and_end_in_the_shared_directory(slurm, tmp_path):
    save, stage = tmp_path / "prov", tmp_path / "stage-%n"  # %n: each node's own directory
    job = sbatch(slurm, "train.sbatch", "--nodes=2", f"--output={tmp_path}/job-%j.out", YPROV4ML_SAVE_DIR=str(save),
                 YPROV4ML_STAGE_DIR=str(stage), TRAIN_ARGS="--epochs 1 --samples 256", EXPERIMENT="staged")
    run_dir = save / "staged" / f"staged-slurm{job}.0"
    log = next(tmp_path.glob("job-*.out")).read_text()
    for rank in range(4):
        assert yprov4ml.load_run(run_dir, rank=rank).status == "FINISHED", log
        assert (run_dir / f"journal.rank{rank}.jsonl").is_file() and (run_dir / f"metrics.rank{rank}.ymetric").is_file()
    for node in ("n1", "n2"):  # both nodes staged, and every file left for the shared directory
        staged = tmp_path / f"stage-{node}"
        assert staged.is_dir() and not [p for p in staged.rglob("*") if p.is_file()]
    collection = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert collection["yprov:missing_ranks"] == "[]"


def test_job_array_gives_distinct_runs(slurm, tmp_path):
    save = tmp_path / "prov"
    sbatch(slurm, "train.sbatch", "--array=0-2", "--ntasks=1", f"--output={tmp_path}/array-%A_%a.out",
           YPROV4ML_SAVE_DIR=str(save), TRAIN_ARGS="--epochs 1 --samples 256", EXPERIMENT="sweep")
    runs = sorted((save / "sweep").iterdir())
    assert len(runs) == 3
    views = [yprov4ml.load_run(r) for r in runs]
    assert len({v.run_id for v in views}) == 3 and {v.status for v in views} == {"FINISHED"}
    side_by_side = {v.run_id: v.metric("val_loss", "validation").values[-1] for v in views}
    assert len(side_by_side) == 3


def test_scancel_leaves_a_killed_record(slurm, tmp_path):
    save = tmp_path / "prov"
    # What is tested here is Slurm's SIGTERM, not MPI: the ranks train on their own (no mpi4py), so that an
    # MPICH start-up hang seen under load on this 2-core node (MPI_Init spinning under srun) cannot mask it.
    no_mpi = tmp_path / "no-mpi"
    no_mpi.mkdir()
    (no_mpi / "mpi4py.py").write_text("raise ImportError('mpi4py hidden for this test')\n")
    job = sbatch(slurm, "train.sbatch", f"--output={tmp_path}/long-%j.out", wait=False, PYTHONPATH=str(no_mpi),
                 YPROV4ML_SAVE_DIR=str(save), TRAIN_ARGS="--epochs 500 --samples 2048 --no-allreduce",
                 EXPERIMENT="cancelled")
    run_dir = save / "cancelled" / f"cancelled-slurm{job}.0"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # cancel once every rank is recording
            if len(list(run_dir.glob("metrics.rank*.ymetric"))) == 4:
                break
            time.sleep(0.5)
        else:
            log = "".join(p.read_text() for p in tmp_path.glob("long-*.out"))
            pytest.fail(f"the job never started recording:\n{log[-3000:]}")
    finally:
        subprocess.run(["scancel", job], env=slurm, check=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", job], env=slurm, capture_output=True, text=True).stdout
        if not queue.strip():
            break
        time.sleep(0.5)
    time.sleep(1)
    for rank in range(4):
        path = run_dir / f"prov.rank{rank}.json"
        assert path.is_file(), sorted(p.name for p in run_dir.iterdir())
        assert_valid_prov(path)
        view = yprov4ml.load_run(run_dir, rank=rank)
        assert view.status == "KILLED" and "SIGTERM" in view.error
        assert len(view.metric("loss")) > 0


def test_pipeline_sbatch_across_two_nodes_builds_bundle_and_crate(slurm, tmp_path):
    out = tmp_path / "pipeline"
    sbatch(slurm, "pipeline.sbatch", "--nodes=2", f"--output={tmp_path}/pipe-%j.out", OUT_DIR=str(out),
           PIPELINE_ARGS="--epochs 1")
    log = next(tmp_path.glob("pipe-*.out")).read_text()
    assert "valid provenance-run-crate-0.5, RECOMMENDED (0 issues)" in log and "NOT valid" not in log, log
    from yprov4wfs_bridge import validate_crate

    report = validate_crate(out / "crate")  # checked here, not only as the example says
    assert report.passed, report.issues
    doc = assert_valid_prov(out / "bundle.prov.json")
    bundles = [e for e in doc["entity"].values() if prov_type(e) == "yprov:RunBundle"]
    assert sorted(b["yprov:task_id"] for b in bundles) == ["evaluate", "train", "train"]
    training = [doc["bundle"][k] for k, e in doc["entity"].items()
                if prov_type(e) == "yprov:RunBundle" and e["yprov:task_id"] == "train"]
    nodes = {a["yprov:node"] for b in training for a in b["activity"].values() if prov_type(a) == "yprov:RunExecution"}
    assert nodes == {"n1", "n2"}  # the training step's ranks ran on both nodes
    assert (out / "crate" / "ro-crate-metadata.json").is_file()
