"""Run lifecycle: context manager status, unique run ids, output layout, graph and SVG, light import."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.storage.metric_file import read_metrics_file

from conftest import assert_valid_prov


def test_context_manager_records_finished(save_dir):
    with yprov4ml.start_run(experiment_name="ok", provenance_save_dir=save_dir) as run:
        yprov4ml.log_metric("loss", 0.5)
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "FINISHED" and view.error is None
    assert yprov4ml.active_run() is None


def test_context_manager_records_failed_with_the_exception(save_dir):
    with pytest.raises(ZeroDivisionError):
        with yprov4ml.start_run(experiment_name="boom", provenance_save_dir=save_dir) as run:
            yprov4ml.log_metric("loss", 0.5, step=3)
            1 / 0
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "FAILED"
    assert "ZeroDivisionError" in view.error
    assert view.metric("loss").steps == [3]  # what was logged before the failure is kept
    assert_valid_prov(run.prov_path)
    assert yprov4ml.active_run() is None


def test_run_directory_layout(recorded_run):
    run, path = recorded_run
    assert path == run.run_dir / "prov.rank0.json"
    assert run.run_dir.parent.name == "fixture"
    names = {p.relative_to(run.run_dir).as_posix() for p in run.run_dir.rglob("*") if p.is_file()}
    assert {"prov.rank0.json", "journal.rank0.jsonl", "graph.rank0.dot", "metrics.rank0.ymetric",
            "artifacts/rank0/notes.txt",
            "models/rank0/mlp.v1.pt", "models/rank0/mlp.v3.pt"} <= names
    assert not [n for n in names if n.endswith(".tmp") or ".partial" in n]


def _start_one(save_dir: str) -> str:
    import yprov4ml as y

    run = y.start_run(experiment_name="race", provenance_save_dir=save_dir)
    y.end_run()
    return str(run.run_dir)


def test_runs_started_at_the_same_moment_never_collide(save_dir):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        dirs = pool.map(_start_one, [str(save_dir)] * 16)
    assert len(set(dirs)) == 16
    for d in dirs:
        assert yprov4ml.load_run(d).status == "FINISHED"


def test_an_explicit_run_id_is_not_reused(save_dir):
    with yprov4ml.start_run(experiment_name="fixed", provenance_save_dir=save_dir, run_id="exp-1"):
        yprov4ml.log_metric("loss", 1.0)
    with pytest.raises(yprov4ml.ProvenanceDirError, match="already recorded"):
        yprov4ml.start_run(experiment_name="fixed", provenance_save_dir=save_dir, run_id="exp-1")
    assert yprov4ml.load_run(save_dir / "fixed" / "exp-1").metric("loss").values == [1.0]


def test_graph_writes_dot_and_svg(save_dir):
    if not __import__("shutil").which("dot"):
        pytest.skip("Graphviz 'dot' is not installed (apt-get install graphviz)")
    with yprov4ml.start_run(experiment_name="svg", provenance_save_dir=save_dir) as run:
        yprov4ml.log_metric("loss", 1.0)
    yprov4ml.start_run(experiment_name="svg", provenance_save_dir=save_dir)
    yprov4ml.log_param("lr", 0.1)
    yprov4ml.log_metric("loss", 1.0)
    path = yprov4ml.end_run(create_graph=True, create_svg=True)
    dot = path.with_name("graph.rank0.dot").read_text()
    assert dot.startswith("digraph") and "lr" in dot and "loss" in dot
    svg = path.with_name("graph.rank0.svg").read_text()
    assert "<svg" in svg and "loss" in svg
    assert not (run.run_dir / "graph.rank0.dot").exists()  # no graph unless asked


def test_without_graphviz_svg_warns_and_dot_is_still_written(save_dir, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    yprov4ml.start_run(experiment_name="nodot", provenance_save_dir=save_dir)
    yprov4ml.log_metric("loss", 1.0)
    with pytest.warns(RuntimeWarning, match="Graphviz's 'dot' program is not installed"):
        path = yprov4ml.end_run(create_svg=True)
    assert path.with_name("graph.rank0.dot").is_file()
    assert not path.with_name("graph.rank0.svg").exists()
    assert_valid_prov(path)


def test_import_is_light():
    code = ("import sys, yprov4ml; heavy = [m for m in ('torch', 'codecarbon', 'pynvml', 'prov', 'psutil', "
            "'numpy', 'jsonschema') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_end_run_returns_the_document_and_load_run_reads_it(recorded_run):
    run, path = recorded_run
    view = yprov4ml.load_run(path)
    assert view.run_id == run.run_id and view.experiment == "fixture"
    assert view.params == {"lr": 0.01, "epochs": 3, "optimizer": "adam", "use_amp": False}
    assert view.metric("loss").values == [1.0 / (1 + i) for i in range(30)]
    assert view.metric("val_loss", "validation").steps == [0, 1, 2]
    assert [m["version"] for m in view.models] == [1, 2, 3]
    assert view.artifacts[0]["name"] == "notes.txt"
    written = read_metrics_file(run.run_dir / "metrics.rank0.ymetric").series
    assert sorted((s.key, s.context) for s in written.values()) == [("loss", "training"), ("val_loss", "validation")]
    journal = [json.loads(line)["event"] for line in (run.run_dir / "journal.rank0.jsonl").read_text().splitlines()]
    assert journal[0] == "start" and journal[-1] == "end"


def test_the_papers_mnist_example_runs_unchanged(tmp_path):
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "examples" / "mnist.py"), "--epochs", "2", "--samples", "512",
                           "--save-dir", str(tmp_path / "prov")], cwd=tmp_path, check=True, capture_output=True,
                          text=True, timeout=600)
    (run_dir,) = (tmp_path / "prov" / "mnist").iterdir()
    assert f"provenance written to {run_dir}" in done.stdout and f"yprov4ml show {run_dir}" in done.stdout
    assert_valid_prov(run_dir / "prov.rank0.json")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED"
    assert len(view.metric("MSE_train").values) == 2 * 8
    assert view.metric("accuracy", "evaluation").values[0] > 0.5  # it learned: the record is of a real run
    assert {"process_cpu_percent", "energy_consumed_kwh", "train_epoch_time"} <= {k for k, _ in view.metrics}
    assert {d["label"] for d in view.datasets} == {"train_dataset", "test_dataset"}
    assert [m["model_name"] for m in view.models] == ["mnist_model", "mnist_model", "mnist_model_final"]
    # the picture: the DOT file always, its SVG exactly where Graphviz is
    assert (run_dir / "graph.rank0.dot").is_file()
    assert (run_dir / "graph.rank0.svg").exists() == (__import__("shutil").which("dot") is not None)
