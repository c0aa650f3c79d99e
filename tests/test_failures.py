"""A distributed job that fails: the rank that failed first is named wherever its ranks are summed up."""

from __future__ import annotations

import json
import subprocess
import sys

import yprov4ml

from conftest import ROOT, assert_valid_prov
from test_distributed import _mpiexec, mpi_run, needs_mpi  # noqa: F401 (a fixture)


@needs_mpi
def test_recover_and_merge_name_the_rank_that_failed_before_the_launcher_ended_the_others(tmp_path):
    done = _mpiexec(4, ROOT / "tests" / "scripts" / "failing_rank.py", str(tmp_path / "prov"), "raise", "2",
                    cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "rank 2 diverged at step 5" in done.stderr
    (run_dir,) = (tmp_path / "prov" / "failing").iterdir()
    recovered = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(run_dir)],
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stderr
    failed = yprov4ml.load_run(run_dir, rank=2)
    assert failed.status == "FAILED" and failed.error == "RuntimeError: rank 2 diverged at step 5"
    # Hydra ends the other ranks at once (SIGKILL): recover writes their documents, each naming rank 2
    others = [yprov4ml.load_run(run_dir, rank=rank) for rank in (0, 1, 3)]
    assert [v.run.get("recovered") for v in others] == [True, True, True]
    for view in others:
        assert view.status == "KILLED" and view.run["ended_after_failure_of_rank"] == 2
        assert view.error.startswith("the process ended without end_run after rank 2 failed "
                                     "(RuntimeError: rank 2 diverged at step 5)")
    merged = subprocess.run([sys.executable, "-m", "yprov4ml.distributed.merge", str(run_dir), "-o",
                             str(tmp_path / "merged.json")], capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    job = assert_valid_prov(tmp_path / "merged.json")["activity"]["merged:distributed"]
    assert job["yprov:first_failed_rank"] == {"$": "2", "type": "xsd:long"}
    assert job["yprov:first_failure"] == "RuntimeError: rank 2 diverged at step 5"


@needs_mpi
def test_start_run_does_not_wait_forever_for_a_rank_zero_that_never_sends_the_run_id(tmp_path):
    done = _mpiexec(3, ROOT / "tests" / "scripts" / "absent_rank_zero.py", str(tmp_path / "prov"), cwd=tmp_path,
                    timeout=25)  # rank 0 sleeps 30 s: only the broadcast's own 2 s timeout ends this in time
    assert done.returncode != 0
    assert "rank 0 sent no run id within 2 s (start_run agrees on it over MPI)" in done.stdout, done.stderr


@needs_mpi
def test_kill_9_of_one_of_8_ranks_names_it_though_the_launcher_kills_the_others_alike(tmp_path):
    done = _mpiexec(8, ROOT / "tests" / "scripts" / "failing_rank.py", str(tmp_path / "prov"), "kill", "5",
                    cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "Killed (signal 9)" in done.stdout + done.stderr
    (run_dir,) = (tmp_path / "prov" / "failing").iterdir()
    assert not list(run_dir.glob("prov.rank*.json"))  # Hydra killed every rank: only the journals say anything
    recovered = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(run_dir)],
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stderr
    victim = yprov4ml.load_run(run_dir, rank=5)
    assert victim.run["ended_first"] is True
    assert victim.error.startswith("the first rank of the job that ended without end_run: killed by a signal")
    for rank in (0, 1, 2, 3, 4, 6, 7):
        view = yprov4ml.load_run(run_dir, rank=rank)
        assert view.status == "KILLED" and view.run["ended_after_failure_of_rank"] == 5
        assert view.error.startswith("the process ended without end_run after rank 5 died")
    merged = subprocess.run([sys.executable, "-m", "yprov4ml.distributed.merge", str(run_dir), "-o",
                             str(tmp_path / "merged.json")], capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    job = assert_valid_prov(tmp_path / "merged.json")["activity"]["merged:distributed"]
    assert job["yprov:first_failed_rank"] == {"$": "5", "type": "xsd:long"}


@needs_mpi
def test_a_run_whose_ranks_all_end_leaves_its_sentinel_nothing_to_write(mpi_run):
    assert yprov4ml.load_run(mpi_run, rank=1).status == "FINISHED"
    assert not (mpi_run / "ends").exists()
