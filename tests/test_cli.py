"""The yprov4ml command on real recorded runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True, timeout=120)


def test_show_summarises_a_run(recorded_run):
    run, _ = recorded_run
    done = cli("show", str(run.run_dir))
    assert done.returncode == 0, done.stderr
    assert run.run_id in done.stdout and "FINISHED" in done.stdout
    assert "lr = 0.01" in done.stdout and "loss@training" in done.stdout
    data = json.loads(cli("show", "--json", str(run.run_dir)).stdout)
    assert data["metrics"]["loss@training"]["count"] == 30
    assert data["metrics"]["loss@training"]["min"] == 1 / 30
    assert data["params"]["optimizer"] == "adam"


def test_show_refuses_a_path_that_is_not_a_run(tmp_path):
    done = cli("show", str(tmp_path))
    assert done.returncode == 2 and "not a yprov4ml run directory" in done.stderr


def test_validate_passes_good_and_fails_bad_documents(recorded_run, tmp_path):
    _, path = recorded_run
    assert cli("validate", str(path)).returncode == 0
    bad = tmp_path / "bad.json"
    doc = json.loads(path.read_text())
    doc["entity"]["run:rank-0/param/lr"] = ["not", "an", "entity"]
    bad.write_text(json.dumps(doc))
    done = cli("validate", str(bad))
    assert done.returncode == 1 and "INVALID" in done.stderr and "schema" in done.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    done = cli("validate", str(garbage))
    assert done.returncode == 1 and "cannot read JSON" in done.stderr


def test_graph_draws_a_finished_run(recorded_run):
    if not shutil.which("dot"):
        pytest.skip("Graphviz 'dot' is not installed")
    run, _ = recorded_run
    done = cli("graph", str(run.run_dir), "--svg", "-o", str(run.run_dir / "picture.dot"))
    assert done.returncode == 0, done.stderr
    assert "<svg" in (run.run_dir / "picture.svg").read_text()


@pytest.mark.parametrize("command,expected", [("merge", "usage: yprov4ml merge"), ("recover", "usage: yprov4ml recover")])
def test_subcommand_help(command, expected):
    done = cli(command, "--help")
    assert done.returncode == 0 and done.stdout.startswith(expected), done.stdout + done.stderr


def test_show_into_a_closed_pipe_is_quiet(tmp_path):
    import yprov4ml

    with yprov4ml.start_run(experiment_name="pipe", provenance_save_dir=tmp_path) as run:
        yprov4ml.log_params({f"param_{i}": "x" * 40 for i in range(5000)})  # far more than a pipe buffer
    shown = subprocess.run(f"{sys.executable} -m yprov4ml.tools.cli show {run.run_dir} | head -1", shell=True,
                           capture_output=True, text=True, timeout=120)
    assert shown.stdout.startswith("run ") and "Traceback" not in shown.stderr and "BrokenPipe" not in shown.stderr
