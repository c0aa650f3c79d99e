"""Nothing recorded is lost: real processes killed with real signals, recovery, disk errors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.tools.recover import recover

from conftest import ROOT, assert_valid_prov, killed_then_recovered

SCRIPT = ROOT / "tests" / "scripts" / "recorded_training.py"
# Points logged but not yet flushed when SIGKILL lands: save_after_n_logs=10 plus the writer's latency.
UNFLUSHED_BOUND = 60


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    truth = tmp_path / "truth.jsonl"
    # SIGINT at its default even when the suite itself runs with SIGINT ignored (nohup, a background job).
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path / "prov"), str(truth), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    assert proc.stdout.readline().strip() == "STARTING", proc.stderr.read()
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    return proc, truth


def ground_truth(truth: Path) -> tuple[Path, list[dict]]:
    events = [json.loads(line) for line in truth.read_text().splitlines() if line.endswith("}")]
    return Path(events[0]["run_dir"]), events


def check_against_truth(run_dir: Path, events: list[dict], complete: bool,
                        signalled_at: float | None = None) -> yprov4ml.prov.reader.RunView:
    assert_valid_prov(run_dir / "prov.rank0.json")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "KILLED"
    assert view.params == {"lr": 0.01, "seed": 7}
    truth_values = [e["value"] for e in events if e["kind"] == "metric"]
    recorded = view.metric("loss")
    n = min(len(truth_values), len(recorded))
    assert recorded.values[:n] == truth_values[:n]  # what is there is exactly what was logged
    assert recorded.steps == list(range(len(recorded)))
    if complete:  # flushed at the signal: everything logged before it is there (plus at most the call in flight)
        before = [e for e in events if e["kind"] == "metric" and e["t"] < (signalled_at or float("inf"))]
        assert len(before) <= len(recorded) <= len(truth_values) + 1, (len(before), len(recorded))
    else:  # SIGKILL: up to the last flush
        assert len(truth_values) - len(recorded) <= UNFLUSHED_BOUND, (len(truth_values), len(recorded))
    models_logged = [e["step"] for e in events if e["kind"] == "model"]
    models_before = [e["step"] for e in events if e["kind"] == "model" and e["t"] < (signalled_at or float("inf"))]
    recorded_models = [m["step"] for m in view.models]
    assert recorded_models[:len(models_before)] == models_before
    assert recorded_models == models_logged[:len(recorded_models)]
    return view


KILL_POINTS = [(sig, seed) for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT) for seed in range(3)]


@pytest.mark.parametrize("sig,seed", KILL_POINTS, ids=[f"{s.name}-{k}" for s, k in KILL_POINTS])
def test_killed_at_a_random_point(tmp_path, sig, seed):
    proc, truth = start(tmp_path)
    time.sleep(random.Random(seed).uniform(0.05, 1.5))
    signalled_at = time.time()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == -sig, proc.stderr.read()  # the signal took its usual effect
    run_dir, events = ground_truth(truth)
    if sig == signal.SIGKILL:
        assert not (run_dir / "prov.rank0.json").exists()
        result = recover(run_dir)
        assert list(result.recovered) == [0]
    view = check_against_truth(run_dir, events, complete=sig != signal.SIGKILL, signalled_at=signalled_at)
    assert ("signal" in view.error) if sig != signal.SIGKILL else ("recovered" in view.error)
    before = (run_dir / "prov.rank0.json").read_bytes()
    again = recover(run_dir)  # idempotent, and never overwrites a document
    assert again.recovered == {} and again.skipped == {0: "already has its document"}
    assert (run_dir / "prov.rank0.json").read_bytes() == before


def test_recovered_run_reports_the_last_step(tmp_path):
    proc, truth = start(tmp_path)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    run_dir, _ = ground_truth(truth)
    recover(run_dir)
    view = yprov4ml.load_run(run_dir)
    assert view.run["last_step"] == view.metric("loss").steps[-1]
    assert view.run["recovered"] is True


def test_user_sigterm_handler_still_runs(tmp_path):
    proc, truth = start(tmp_path, "--user-handler")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 3  # the user's handler decided the exit
    assert "user handler ran" in Path(str(truth) + ".handler").read_text()
    run_dir, events = ground_truth(truth)
    check_against_truth(run_dir, events, complete=True)


def test_uncaught_exception_records_failed(tmp_path):
    truth = tmp_path / "truth.jsonl"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "prov"), str(truth), "--raise-at", "40"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "crash at step 40" in done.stderr  # the usual traceback still shows
    run_dir, events = ground_truth(truth)
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FAILED" and "RuntimeError: crash at step 40" in view.error
    assert view.metric("loss").steps == list(range(40))


def test_forgotten_end_run_is_finished_at_exit(tmp_path):
    truth = tmp_path / "truth.jsonl"
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "prov"), str(truth), "--steps", "30",
                    "--forget-end-run"], check=True, capture_output=True, timeout=120)
    run_dir, _ = ground_truth(truth)
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and "end_run was not called" in view.error
    assert len(view.metric("loss")) == 30


def test_recover_leaves_a_finished_run_alone(recorded_run):
    run, path = recorded_run
    before = path.read_bytes()
    result = recover(run.run_dir)
    assert result.recovered == {} and path.read_bytes() == before


def test_recover_cli_refuses_what_is_not_a_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(tmp_path)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "no journal" in done.stderr


def test_a_full_disk_during_training_is_reported_once_and_at_end(save_dir):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    # Drained by hand only: the background writer must not write while the test swaps the file.
    run = yprov4ml.start_run(experiment_name="full", provenance_save_dir=save_dir, save_after_n_logs=1000,
                             flush_interval_s=3600)
    yprov4ml.log_metric("loss", 1.0, step=0)
    run._writer.drain()
    series_path = run.record.metrics["loss", "training"].path
    flushed = series_path.read_bytes()
    series_path.unlink()
    series_path.symlink_to("/dev/full")  # every further write fails with ENOSPC, as on a full disk
    run._writer.file.close()  # the writer keeps its file open: have it open the swapped one
    with pytest.warns(RuntimeWarning, match="could not write metrics") as caught:
        for step in range(1, 40):
            yprov4ml.log_metric("loss", 1.0, step=step)  # never raises into the training loop
            run._writer.drain()
    assert len(caught) == 1  # reported once
    yprov4ml.log_metric("ok", 2.0)
    series_path.unlink()
    series_path.write_bytes(flushed)  # space is back; what was flushed before is intact
    path = yprov4ml.end_run()
    view = yprov4ml.load_run(path)
    assert "No space left" in view.error and "all points written later" in view.error  # kept, then written
    assert view.metric("ok").values == [2.0]
    assert view.metric("loss").steps == list(range(40)) and not view.problems


def test_journal_write_failure_is_a_clear_error(save_dir):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    run = yprov4ml.start_run(experiment_name="jfull", provenance_save_dir=save_dir)
    full = os.open("/dev/full", os.O_WRONLY)
    run.journal._fd, real = full, run.journal._fd
    with pytest.raises(yprov4ml.ProvenanceDirError, match="cannot record.*No space"):
        yprov4ml.log_param("lr", 0.1)
    run.journal._fd = real
    os.close(full)
    assert "lr" not in run.record.params  # not half-recorded
    yprov4ml.log_param("lr", 0.1)
    yprov4ml.end_run()
    assert yprov4ml.load_run(run.run_dir).params == {"lr": 0.1}


@pytest.mark.skipif(shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None, reason="no mpiexec")
def test_sigkill_of_one_rank_under_mpiexec_and_recovery(tmp_path):
    """Real ranks: rank 2 is SIGKILLed mid-run. Afterwards every rank has a valid record: the dead rank's up to its
    last flush. (MPICH's mpiexec then kills the surviving ranks too, even with -disable-auto-cleanup; those that
    had finished keep their FINISHED documents, the others are recovered like the dead one.)"""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    done = subprocess.run([mpiexec, "-disable-auto-cleanup", "-n", "4", sys.executable,
                           str(ROOT / "examples" / "distributed_train.py"), "--epochs", "2", "--samples", "512",
                           "--kill-rank", "2", "--no-allreduce"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "YPROV4ML_COLLECTION_TIMEOUT": "5"})
    assert done.returncode != 0
    (run_dir,) = (tmp_path / "prov" / "distributed").iterdir()
    assert not (run_dir / "prov.rank2.json").exists()
    result = recover(run_dir)
    assert 2 in result.recovered
    for rank in range(4):
        assert_valid_prov(run_dir / f"prov.rank{rank}.json")
        view = yprov4ml.load_run(run_dir, rank=rank)
        assert view.status in ("FINISHED", "KILLED")
        if view.status == "FINISHED" or rank == 2:
            loss = view.metric("loss")
            assert loss.steps == list(range(len(loss)))  # a gap-free prefix of what the rank logged
        else:  # killed by mpiexec's clean-up at any point, maybe before its first metric
            assert all(s == list(range(len(s))) for s in (d.steps for k, d in view.metrics.items() if k[0] == "loss"))
    dead = yprov4ml.load_run(run_dir, rank=2)
    assert dead.status == "KILLED" and dead.params["world_size"] == 4
    assert [m["version"] for m in dead.models] == [1]


def test_recover_leaves_a_running_run_alone_and_recovers_it_once_dead(tmp_path):
    proc, truth = start(tmp_path)
    try:
        run_dir, _ = ground_truth(truth)
        result = recover(run_dir)
        assert result.recovered == {} and "still running" in result.skipped[0]
        assert not (run_dir / "prov.rank0.json").exists()
    finally:
        proc.kill()
        proc.wait()
    assert list(recover(run_dir).recovered) == [0]


def test_recover_an_experiment_directory_recovers_every_unfinished_run_below_it(tmp_path, recorded_run):
    dead = []
    for n in range(2):
        (tmp_path / f"job{n}").mkdir()
        proc, truth = start(tmp_path / f"job{n}")
        proc.kill()
        proc.wait()
        dead.append(ground_truth(truth)[0])
    experiment = dead[0].parent
    assert dead[1].parent.name == experiment.name
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(tmp_path / "job0" / "prov"),
                           str(dead[1].parent)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for run_dir in dead:
        assert yprov4ml.load_run(run_dir).status == "KILLED"
        assert f"{run_dir / 'prov.rank0.json'}: recovered" in done.stdout


def test_a_staged_rank_writes_locally_and_moves_everything_into_the_shared_directory(tmp_path):
    stage, shared = tmp_path / "node-local", tmp_path / "shared"
    with yprov4ml.start_run("www.example.org", "staged", shared, stage_dir=stage) as run:
        yprov4ml.log_metric("loss", 0.5, step=0)
        notes = tmp_path / "notes.txt"
        notes.write_text("hello")
        yprov4ml.log_artifact(notes)
        staged = run.run_dir
        assert staged.is_relative_to(stage) and (staged / "journal.rank0.jsonl").is_file()
        assert not (run.final_dir / "journal.rank0.jsonl").exists()  # nothing on the shared file system yet
    assert run.run_dir == run.final_dir == shared / "staged" / run.run_id and run.prov_path.is_file()
    assert not staged.exists()  # every staged file moved, the emptied folders gone
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("loss").values == [0.5] and view.artifacts[0]["prov:location"] == "artifacts/rank0/notes.txt"
    assert (run.run_dir / "artifacts" / "rank0" / "notes.txt").read_text() == "hello" and not view.problems


def test_a_killed_staged_rank_is_recovered_into_the_shared_directory(tmp_path):
    stage, shared = tmp_path / "node-local", tmp_path / "shared"
    script = (f"import os, yprov4ml; yprov4ml.start_run('x.org', 'staged', r'{shared}', stage_dir=r'{stage}'); "
              "yprov4ml.log_metric('loss', 1.0); yprov4ml.active_run()._writer.drain(); os._exit(9)")
    subprocess.run([sys.executable, "-c", script], timeout=60)
    (run,) = (stage / "staged").iterdir()
    staged, target = run / "rank0", shared / "staged" / run.name
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(staged), "--into", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    view = yprov4ml.load_run(target)
    assert view.status == "KILLED" and view.metric("loss").values == [1.0] and not staged.exists()


def test_checkpoints_are_hashed_off_the_training_thread_and_the_digest_is_recorded(save_dir, monkeypatch):
    torch = pytest.importorskip("torch")
    import threading

    from yprov4ml import run_files

    hashing_may_go = threading.Event()
    real = run_files.tree_size_and_sha256

    def slow_hash(path):  # a checkpoint of gigabytes: seconds of hashing
        assert hashing_may_go.wait(30)
        return real(path)

    monkeypatch.setattr(run_files, "tree_size_and_sha256", slow_hash)
    big = save_dir.parent / "big.bin"
    big.write_bytes(os.urandom(run_files.COPY_ON_THE_SPOT_BYTES + 1))
    with yprov4ml.start_run("www.example.org", "offthread", save_dir) as run:
        version = yprov4ml.save_model_version(torch.nn.Linear(4, 2), "net", step=0)
        artifact = yprov4ml.log_artifact(big)  # large: copied in the background too
        assert version.sha256 is None and artifact.sha256 is None  # the training loop did not wait
        yprov4ml.log_metric("loss", 0.5)
        hashing_may_go.set()
    view = yprov4ml.load_run(run.run_dir)
    (model,) = view.models
    assert model["sha256"] == hashlib.sha256((run.run_dir / model["prov:location"]).read_bytes()).hexdigest()
    assert view.artifacts[0]["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    events = [json.loads(line) for line in (run.run_dir / "journal.rank0.jsonl").read_text().splitlines()]
    assert sorted(e["kind"] for e in events if e["event"] == "file_hashed") == ["artifact", "model"]


def test_a_kill_before_a_digest_leaves_it_to_recover(tmp_path):
    pytest.importorskip("torch")
    # the worker thread is held, as a slow disk would hold it: the process dies with the digest not written
    calls = ("import threading, torch; from yprov4ml import run_files; "
             "run_files.tree_size_and_sha256 = lambda path: threading.Event().wait(); "
             "yprov4ml.save_model_version(torch.nn.Linear(2, 1), 'net', step=0)")
    run_dir = killed_then_recovered(tmp_path, calls)
    (model,) = yprov4ml.load_run(run_dir).models
    assert model["hashed_by_recover"] is True
    assert model["sha256"] == hashlib.sha256((run_dir / model["prov:location"]).read_bytes()).hexdigest()
