"""A job its launcher restarts (torchrun --max-restarts, Slurm --requeue) records attempts of one run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.distributed.attempts import restart_count
from yprov4ml.distributed.ranks import RankInfo
from yprov4ml.distributed.run_id import agree_run_identity

from conftest import ROOT, assert_valid_prov

pytest.importorskip("torch.distributed")
TORCHRUN = Path(sys.executable).with_name("torchrun")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(save_dir: Path, *options: str, failing_attempts: int = 1, timeout: float = 300):
    return subprocess.run([str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", "2", *options,
                           str(ROOT / "tests" / "scripts" / "elastic_worker.py"), str(save_dir), str(failing_attempts)],
                          capture_output=True, text=True, timeout=timeout)


def run_dirs(save_dir: Path) -> list[Path]:
    return sorted((save_dir / "elastic").iterdir(), key=lambda p: p.name)


def test_a_torchrun_restart_is_a_second_attempt_informed_by_the_failed_one(tmp_path):
    # static rendezvous (rdzv id "none") and start_run before init_process_group: the agent store agrees the id
    done = torchrun(tmp_path, "--max-restarts", "1", "--master-port", str(free_port()))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    first, second = run_dirs(tmp_path)
    assert second.name == f"{first.name}-attempt2"
    failed = yprov4ml.load_run(first, rank=1)
    assert failed.status == "FAILED" and "rank 1 fails on attempt 1" in failed.error
    for rank in (0, 1):
        retry = yprov4ml.load_run(second, rank=rank)
        assert retry.status == "FINISHED" and retry.metric("rank_sum").values == [3.0]
        document = assert_valid_prov(second / f"prov.rank{rank}.json")
        assert retry.run["attempt"] == 2 and retry.run["previous_attempt"] == first.name
        informed = [r for r in document["wasInformedBy"].values() if r["prov:informed"] == f"run:rank-{rank}"]
        assert [r["prov:informant"] for r in informed] == [f"previous:rank-{rank}"]
        assert document["prefix"]["previous"].endswith(f"/{first.name}/")
    collection = json.loads((second / "collection.json").read_text())["activity"]["run:distributed"]
    assert collection["yprov:missing_ranks"] == "[]" and collection["yprov:coordinated_by"] == "torch.distributed"
    # the first attempt keeps what it wrote: its rank 1 document is still the failed one
    assert "yprov:attempt" not in json.loads((first / "prov.rank1.json").read_text())["activity"]["run:rank-1"]


def test_a_job_out_of_restarts_fails_with_every_attempt_recorded(tmp_path):
    done = torchrun(tmp_path, "--max-restarts", "1", "--standalone", failing_attempts=2)
    assert done.returncode != 0
    first, second = run_dirs(tmp_path)
    assert first.name.startswith("elastic-torchrun-") and second.name == f"{first.name}-attempt2"
    assert [yprov4ml.load_run(d, rank=1).status for d in (first, second)] == ["FAILED", "FAILED"]


def test_slurm_requeue_and_a_resubmission_are_attempts_of_the_job_s_run():
    slurm = {"SLURM_JOB_ID": "41", "SLURM_STEP_ID": "0", "SLURM_RESTART_COUNT": "2"}
    ranks = RankInfo(3, 4, 1, "slurm", "slurm41.0")
    found = agree_run_identity("exp", ranks, None, 0, slurm)
    assert (found.run_id, found.attempt, found.previous_attempt) == ("exp-slurm41.0-attempt3", 3,
                                                                     "exp-slurm41.0-attempt2")
    again = agree_run_identity("exp", RankInfo(), "mine", 0, {"YPROV4ML_RESTART_COUNT": "1"})
    assert (again.run_id, again.previous_attempt) == ("mine-attempt2", "mine")
    # torchrun inside a requeued job counts its own restarts; a counter that is no count is ignored
    assert restart_count({"TORCHELASTIC_RESTART_COUNT": "0", "SLURM_RESTART_COUNT": "5"}) == 0
    assert restart_count({"SLURM_RESTART_COUNT": "-1"}) == restart_count({"SLURM_RESTART_COUNT": "9" * 30}) == 0
    # a fresh id of a lone process has no earlier attempt, whatever the counter says
    alone = agree_run_identity("exp", RankInfo(), None, 0, {"SLURM_RESTART_COUNT": "1"})
    assert alone.attempt == 1 and alone.previous_attempt is None


def test_a_resubmitted_run_id_names_the_way_to_record_a_retry(tmp_path):
    with yprov4ml.start_run(experiment_name="again", provenance_save_dir=tmp_path, run_id="job-7"):
        yprov4ml.log_metric("loss", 1.0)
    with pytest.raises(yprov4ml.ProvenanceDirError, match="YPROV4ML_RESTART_COUNT"):
        yprov4ml.start_run(experiment_name="again", provenance_save_dir=tmp_path, run_id="job-7")
