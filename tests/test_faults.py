"""Faults a hostile user or a hostile machine brings: signal storms, ignored signals, fork, a full disk."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.errors import ProvenanceDirError
from yprov4ml.tools.recover import recover

from conftest import assert_valid_prov

SCRIPTS = Path(__file__).parent / "scripts"
TRAINING = SCRIPTS / "recorded_training.py"


def _launch(tmp_path: Path, name: str, *extra: str, sigint=signal.SIG_DFL) -> subprocess.Popen:
    out = tmp_path / name
    out.mkdir()

    def disposition() -> None:
        signal.signal(signal.SIGINT, sigint)

    return subprocess.Popen([sys.executable, str(TRAINING), str(out / "prov"), str(out / "truth.jsonl"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=disposition)


def _run_dir(tmp_path: Path, name: str) -> Path:
    first = (tmp_path / name / "truth.jsonl").read_text().splitlines()[0]
    return Path(json.loads(first)["run_dir"])


def test_signal_storm_with_a_flush_on_every_point_never_hangs(tmp_path):
    """SIGTERM and SIGINT at random moments of a loop that flushes on every point: every process ends, with a
    valid KILLED document holding what was logged."""
    rng = random.Random(17)
    procs = []
    for n in range(12):
        proc = _launch(tmp_path, f"p{n}", "--save-after", "1")
        assert proc.stdout.readline().strip() == "STARTING"
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        procs.append((n, proc, rng.choice([signal.SIGTERM, signal.SIGINT]), rng.uniform(0.0, 0.4)))
    for n, proc, sig, delay in procs:
        time.sleep(delay)
        proc.send_signal(sig)
    hung = []
    for n, proc, sig, _ in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            hung.append(n)
            proc.kill()
    assert not hung, f"processes {hung} did not exit after one signal"
    for n, proc, sig, _ in procs:
        assert proc.returncode == -sig, (n, proc.returncode, proc.stderr.read())
        run_dir = _run_dir(tmp_path, f"p{n}")
        assert_valid_prov(run_dir / "prov.rank0.json")
        view = yprov4ml.load_run(run_dir)
        assert view.status == "KILLED" and sig.name in view.error
        assert view.metric("loss").steps == list(range(len(view.metric("loss"))))


def test_a_signal_during_start_run_never_hangs(tmp_path):
    rng = random.Random(5)
    for n in range(6):
        proc = _launch(tmp_path, f"s{n}", "--save-after", "1")
        assert proc.stdout.readline().strip() == "STARTING"
        time.sleep(rng.uniform(0.0, 0.05))  # inside start_run (git, journal, threads) or just after
        proc.send_signal(rng.choice([signal.SIGTERM, signal.SIGINT]))
        proc.wait(timeout=60)  # a deadlock on the run lock would hang here
        run_dirs = [j.parent for j in (tmp_path / f"s{n}" / "prov").glob("killme/*/journal.rank0.jsonl")]
        for run_dir in run_dirs:  # whatever was started is finished, recoverable, or plainly never started
            if not (run_dir / "prov.rank0.json").exists():
                result = recover(run_dir)
                if result.skipped:
                    assert "never started" in result.skipped[0]
                    continue
                assert list(result.recovered) == [0]
            assert_valid_prov(run_dir / "prov.rank0.json")


def test_an_ignored_sigint_stays_ignored(tmp_path):
    proc = _launch(tmp_path, "nohup", "--steps", "400", sigint=signal.SIG_IGN)
    assert proc.stdout.readline().strip() == "STARTING"
    assert proc.stdout.readline().strip() == "READY"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    view = yprov4ml.load_run(_run_dir(tmp_path, "nohup"))
    assert view.status == "FINISHED" and view.error is None
    assert len(view.metric("loss")) == 400


def test_a_forked_child_never_finishes_or_writes_the_parents_run(tmp_path):
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(SCRIPTS / "forking_training.py"), str(tmp_path / "prov"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    run_dir = Path(result["run_dir"])
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and view.error is None  # not "ended at interpreter exit" by the child
    assert view.metric("loss").steps == list(range(15))  # every point of the parent, none of the child
    assert not view.problems
    assert (run_dir / "metrics.rank0.ymetric").read_bytes().count(b'"yprov4ml_metrics"') == 1
    child = Path(str(out) + ".child").read_text()
    assert child.startswith("ForkedProcessError") and "forked from the process of run" in child
    assert all(m.startswith("ForkedProcessError") and "worker" in m for m in result["workers"])
    assert ("worker_loss", "training") not in view.metrics


@pytest.mark.parametrize("delay_s", [0.0, 0.005, 0.01, 0.02])
def test_a_fork_right_after_start_run_does_not_hang(tmp_path, delay_s):
    # A DataLoader's fork workers start this early; a fork during start_run's background imports once waited
    # forever (two at-fork locks taken in opposite orders).
    done = subprocess.run([sys.executable, str(SCRIPTS / "fork_after_start.py"), str(tmp_path / "prov"),
                           str(delay_s)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [run_dir] = (tmp_path / "prov" / "fork-after-start").iterdir()
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and view.metric("loss").steps == [0, 1]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: a disk that really fills up, and really frees again."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    try:
        fh = open(filler, "wb", buffering=0)  # unbuffered: nothing is left to flush (and fail) at close
    except OSError as exc:  # the run alone filled the disk: say with what
        listing = subprocess.run(["du", "-ab", str(disk)], capture_output=True, text=True).stdout
        raise AssertionError(f"the disk was full before the test filled it ({exc}):\n{listing}") from exc
    with fh:
        try:
            while fh.write(b"\0" * 65536):  # a short write near the end, then ENOSPC (or 0 bytes)
                pass
        except OSError:
            pass
    return filler


def test_a_briefly_full_disk_loses_nothing_logged_after_it(small_disk):
    run = yprov4ml.start_run("www.example.org", "fulldisk", small_disk / "prov", save_after_n_logs=50,
                             flush_interval_s=0.05)
    for step in range(1000):
        yprov4ml.log_metric("loss", float(step), step=step)
    run._writer.drain()
    filler = _fill(small_disk)
    with pytest.warns(RuntimeWarning, match="could not write metrics"):
        for step in range(1000, 3000):
            yprov4ml.log_metric("loss", float(step), step=step)
        run._writer.drain()  # the disk refuses: the points stay in memory, the file is cut back
    filler.unlink()
    for step in range(3000, 8000):
        yprov4ml.log_metric("loss", float(step), step=step)
    yprov4ml.end_run()
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("loss").steps == list(range(8000))  # before, during and after the full disk
    assert not view.problems
    assert "metric write(s) failed" in view.error and "all points written later" in view.error


def test_end_run_on_a_full_disk_says_what_to_do_and_stays_recoverable(small_disk):
    run = yprov4ml.start_run("www.example.org", "fullend", small_disk / "prov", save_after_n_logs=10)
    yprov4ml.log_param("lr", 0.1)
    for step in range(100):
        yprov4ml.log_metric("loss", float(step), step=step)
    run._writer.drain()
    filler = _fill(small_disk)
    with pytest.raises(ProvenanceDirError, match="yprov4ml recover"):
        yprov4ml.end_run()
    assert yprov4ml.active_run() is None
    filler.unlink()
    recover(run.run_dir)
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "KILLED" and view.params == {"lr": 0.1}
    assert view.metric("loss").steps == list(range(100))
