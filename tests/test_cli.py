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


def test_validate_show_and_graph_take_run_and_experiment_directories_and_merged_documents(tmp_path):
    import yprov4ml

    for rank in (0, 1):
        with yprov4ml.start_run("www.example.org", "exp", tmp_path / "prov", collect_all_processes=True, rank=rank,
                                world_size=2, run_id="two", collection_timeout_s=5):
            yprov4ml.log_metric("loss", float(rank))
            yprov4ml.log_dataset(list(range(10)), "numbers")
    run_dir = tmp_path / "prov" / "exp" / "two"
    checked = cli("validate", str(run_dir))
    assert checked.returncode == 0 and checked.stdout.count("valid PROV-JSON") == 3  # two ranks, the collection
    assert cli("validate", str(tmp_path / "prov")).stdout.count("valid PROV-JSON") == 3
    shown = cli("show", str(run_dir.parent))
    assert shown.returncode == 0 and "run two" in shown.stdout and "datasets:" in shown.stdout
    assert cli("merge", str(run_dir), "-o", str(tmp_path / "merged.json")).returncode == 0
    merged = cli("show", str(tmp_path / "merged.json"))
    assert merged.returncode == 0 and "run two rank 1  FINISHED" in merged.stdout
    drawn = cli("graph", str(run_dir.parent))
    assert drawn.returncode == 0
    dot = (run_dir / "graph.dot").read_text()  # both ranks of the run, each in its own cluster
    assert 'label="run two"' in dot and 'label="rank 0"' in dot and 'label="rank 1"' in dot


def test_show_on_a_killed_run_says_how_to_recover_it(tmp_path):
    script = ("import os, yprov4ml; yprov4ml.start_run('x.org', 'killed', r'%s'); yprov4ml.log_metric('a', 1.0); "
              "os._exit(9)") % (tmp_path / "prov")
    subprocess.run([sys.executable, "-c", script], timeout=60)
    (run_dir,) = (tmp_path / "prov" / "killed").iterdir()
    shown = cli("show", str(run_dir))
    assert shown.returncode == 2 and f"yprov4ml recover {run_dir}" in shown.stderr
    assert "recover" in cli("show", str(run_dir.parent)).stdout
    assert cli("recover", str(run_dir)).returncode == 0
    assert "KILLED" in cli("show", str(run_dir)).stdout


def test_show_prints_energy_under_a_heading_at_readable_precision(recorded_run, monkeypatch):
    from yprov4ml.tools.show import render, summary

    run, _ = recorded_run
    view = __import__("yprov4ml").load_run(run.run_dir)
    view.run["total_energy_consumed_kwh"] = 0.000123456789123
    text = render(summary(view))
    assert "energy:\n  total_energy_consumed_kwh = 0.0001235" in text


def test_show_ignores_nan_in_min_and_max_like_the_series_summary(tmp_path):
    import yprov4ml

    with yprov4ml.start_run(experiment_name="nan", provenance_save_dir=tmp_path) as run:
        for value in (3.0, float("nan"), 1.0, 2.0):
            yprov4ml.log_metric("loss", value)
    shown = json.loads(cli("show", str(run.run_dir), "--json").stdout)
    assert shown["metrics"]["loss@training"] == {"count": 4, "last": 2.0, "min": 1.0, "max": 3.0}
