"""Upstream yProv4ML's examples, call for call (tests/upstream_replay/*.py, synthetic data), checked item by item.

Each script makes the calls of one of upstream's examples, notebooks or logger scripts in upstream's own forms
(argument order, keywords, import paths, enums, loggers, callbacks). The test then reads the PROV record and
finds every item the script logged in it, as the kind of record it should be.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import attributes, prov_type

from conftest import assert_valid_prov, only_run_dir

SCRIPTS = Path(__file__).parent / "upstream_replay"


def replay(script: str, tmp_path: Path, experiment: str, env: dict | None = None) -> tuple[Path, str]:
    """Run one replay script; its run directory and its stderr (warnings are part of the behaviour)."""
    done = subprocess.run([sys.executable, str(SCRIPTS / script), str(tmp_path / "prov")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(SCRIPTS), "YPROV4ML_COUNTRY": "ITA", **(env or {})})
    assert done.returncode == 0, done.stderr[-4000:]
    run_dir = only_run_dir(tmp_path / "prov", experiment)
    for document in run_dir.rglob("prov.rank*.json"):
        assert_valid_prov(document)
    return run_dir, done.stderr


def entities(run_dir: Path, kind: str) -> list[dict]:
    doc = json.loads((run_dir / "prov.rank0.json").read_text())
    return [attributes(e) for e in doc["entity"].values() if prov_type(e) == kind]


def test_the_torch_example_with_indexed_datasets_nested_contexts_and_zarr(tmp_path):
    pytest.importorskip("zarr")
    run_dir, stderr = replay("torch_indexed.py", tmp_path, "torch_indexed")
    assert "does not exist here; the running script" in stderr  # another machine's path: said, not hidden
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED"
    assert view.params["execution_command"] == "python prov4ml_torch.py"
    assert view.params["optimizer"] == "Adam" and view.params["loss_fn"] == "MSELoss"
    assert "RandomHorizontalFlip" in view.params["dataset transformation"]
    loss_fn = next(e for e in entities(run_dir, "yprov:Parameter") if e["key"] == "loss_fn")
    doc = json.loads((run_dir / "prov.rank0.json").read_text())
    used = {u["prov:activity"] for u in doc["used"].values() if u["prov:entity"].endswith("/param/loss_fn")}
    assert used == {"run:rank-0/context/training_lod2"} and loss_fn["value"] == "MSELoss"
    assert view.context_path("training_lod3") == "training/training_lod2/training_lod3"
    assert view.metric("MSE_train").steps == [0, 0, 1, 1] and len(view.metric("MSE_val", "validation")) == 2
    assert len(view.metric("process_cpu_percent").values) == 4
    # sample lineage twice over: the script's own "Indices" points, and each wrapper's batches
    logged = view.sample_indices["Indices", "training"]
    assert logged.steps == [0, 0, 1, 1] and sorted(sum(logged.values[:2], [])) == list(range(32))
    assert view.sample_indices["train_dataset", "training"].values == logged.values
    assert len(view.sample_indices["val_dataset", "training"]) == 2
    models = {(m["model_name"], m["version"]) for m in view.models}
    assert models == {("mnist_model_version", 1), ("mnist_model_version", 2), ("mnist_model_final", 1)}
    final = next(m for m in view.models if m["model_name"] == "mnist_model_final")
    layers = json.loads((run_dir / final["layers_description"]).read_text())["layers"]
    assert [layer["type"] for layer in layers] == ["Flatten", "Linear", "ReLU"]
    source = next(a for a in view.artifacts if a.get("role") == "source code")
    assert source["prov:location"].endswith("torch_indexed.py")
    series = {e["key"]: e for e in entities(run_dir, "yprov:MetricSeries")}
    assert series["MSE_train"]["exported_as"].endswith(".zarr") and (run_dir / series["MSE_train"]["exported_as"]).is_dir()
    assert (run_dir / "graph.rank0.svg").is_file() and (run_dir / "crate" / "ro-crate-metadata.json").is_file()


def test_the_notebook_in_the_papers_argument_order(tmp_path):
    run_dir, _ = replay("paper_order.py", tmp_path, "paper_order")
    view = yprov4ml.load_run(run_dir)
    assert [d["label"] for d in view.datasets] == ["train_ds", "test_ds"] and view.datasets[0]["samples"] == 32
    assert view.metric("MSE_train").steps == [0, 0, 1, 1] and len(view.metric("MSE_test", "evaluation")) == 1
    assert {m["model_name"] for m in view.models} == {"mnist_model_version_0", "mnist_model_version_1",
                                                      "mnist_model_final"}
    energy = [k for k, _ in view.metrics if k.endswith("_kwh")]
    assert "energy_consumed_kwh" in energy and view.run["energy_country"] == "ITA"
    assert (run_dir / "graph.rank0.svg").is_file()


def test_the_lightning_examples_directives_and_logger_share_one_run(tmp_path):
    pytest.importorskip("lightning")
    run_dir, _ = replay("lightning_calls.py", tmp_path, "lightning_calls")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and "Adam" in view.params["optimizer"]
    assert view.metric("MSE").steps == [0] * 4 + [1] * 4  # the directive, in the training step
    assert len(view.metric("MSE", "validation")) == 3 and len(view.metric("MSE", "evaluation")) == 2  # + sanity check
    assert view.metric("MSE_training").steps == list(range(8))  # Lightning's self.log, through ProvMLLogger
    assert view.metric("MSE_validation", "validation").steps == [3, 7]
    # "epoch": the directive's point at each epoch's end and the epoch Lightning passes the logger, as upstream
    assert view.metric("epoch").values == [0.0] * 6 + [1.0] * 6
    assert len(view.metric("train_epoch_time").values) == 2 and view.metric("train_epoch_time").unit == "s"
    assert {m["model_name"] for m in view.models} == {"model_version_0", "model_version_1", "model_version_final"}
    assert [d["label"] for d in view.datasets] == ["train_dataset", "val_dataset", "test_dataset"]
    assert (run_dir / "crate" / "ro-crate-metadata.json").is_file()


def test_the_itwinai_logger_example_records_through_the_logger_alone(tmp_path):
    run_dir, _ = replay("itwinai_calls.py", tmp_path, "itwinai_calls")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and "Adam" in view.params["optimizer"]
    assert [d["label"] for d in view.datasets] == ["train_dataset", "test_dataset"]  # loaders as datasets
    assert view.metric("MSE_train").steps == [0, 0, 1, 1] and len(view.metric("MSE_test", "evaluation")) == 1
    assert len(view.metric("energy_consumed_kwh").values) == 2 and len(view.metric("system_cpu_percent")) == 2
    assert [m["version"] for m in view.models if m["model_name"] == "mnist_model_version"] == [1, 2]
    assert any(m["final"] for m in view.models if m["model_name"] == "mnist_model_final")
    assert (run_dir / "graph.rank0.svg").is_file()  # the logger's create_graph/create_svg defaults


def test_the_tensorflow_proof_of_learning_example(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed (the dev extra installs tensorflow-cpu on Linux)")
    run_dir, _ = replay("keras_pol.py", tmp_path, "keras_pol",
                        env={"SYNTHETIC_TFDS_SIZES": "320,64", "TF_CPP_MIN_LOG_LEVEL": "3"})
    view = yprov4ml.load_run(run_dir)
    assert view.params["seed"] == 42 and view.params["num_epochs"] == 2
    assert view.params["execution_command"] == "python"
    assert [(d["label"], d["samples"]) for d in view.datasets] == [("ds_train", 320), ("ds_test", 64)]
    keras_model = next(m for m in view.models if m["model_name"] == "model_Sequential")
    assert keras_model["checkpoint_format"] == "keras" and keras_model["prov:location"].endswith(".keras")
    snapshots = [m["pol_batch"] for m in view.models if m["model_name"] == "model_label_pol"]
    assert snapshots == [5, 10, 15, 20]  # 10 batches an epoch, 2 epochs, every 5th
    assert subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "pol", str(run_dir)]).returncode == 0
    copy = run_dir / "metrics" / "training" / "model_label_pol_loss.rank0.csv"
    assert copy.read_text().splitlines()[0] == "step;time;value"  # csv_separator: upstream's default CSV copies


def test_the_lstm_example_writes_netcdf_and_unifies_its_experiment(tmp_path):
    pytest.importorskip("xarray")
    run_dir, _ = replay("lstm_netcdf.py", tmp_path, "lstm_netcdf")
    view = yprov4ml.load_run(run_dir)
    assert view.params == {"optimizer": "Adam", "loss_fn": "CrossEntropyLoss"}
    assert [d["label"] for d in view.datasets] == ["train_dataset", "val_dataset"]
    assert view.metric("Loss").steps == [0, 0, 0, 1, 1, 1] and len(view.metric("energy_consumed_kwh")) == 6
    assert view.models[0]["model_name"] == "lstm_text_classifier_final" and view.models[0]["final"] is True
    import xarray

    copy = xarray.open_dataset(run_dir / "metrics" / "training" / "Loss.rank0.nc")
    assert list(copy["value"].values) == view.metric("Loss").values
    unified = json.loads((run_dir.parent / "experiment.prov.json").read_text())
    assert len(unified["bundle"]) == 1
