"""Upstream's loggers and callbacks: itwinai's logger interface, Keras callbacks, proof of learning."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import yprov4ml
from yprov4ml.tools.pol import main as pol_main

from conftest import assert_valid_prov, only_run_dir

torch = pytest.importorskip("torch")


def _pol(*args: str, capsys) -> tuple[int, dict]:
    code = pol_main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _trained(save_dir, experiment: str, seed: int) -> yprov4ml.Run:
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 1)
    optim = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    with yprov4ml.start_run("www.example.org", experiment, save_dir) as run:
        for batch in range(1, 7):
            loss = net(x).pow(2).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            if batch % 2 == 0:
                yprov4ml.log_proof_of_learning_step("net", net, loss, batch, step=0, context="training")
    return run


def test_a_proof_of_learning_trajectory_is_checked_and_compared(save_dir, capsys):
    first = _trained(save_dir, "pol", seed=3)
    again = _trained(save_dir, "pol", seed=3)
    other = _trained(save_dir, "pol", seed=4)
    view = yprov4ml.load_run(first.run_dir)
    snapshots = [m for m in view.models if m["model_name"] == "net_pol"]
    assert [m["pol_batch"] for m in snapshots] == [2, 4, 6] and all(len(m["weights_sha256"]) == 64 for m in snapshots)
    assert view.metric("net_pol_loss").steps == [2, 4, 6]
    doc = assert_valid_prov(first.prov_path)
    chain = {(r["prov:generatedEntity"], r["prov:usedEntity"]) for r in doc["wasDerivedFrom"].values()}
    assert ("run:rank-0/model/net_pol/v2", "run:rank-0/model/net_pol/v1") in chain

    assert _pol(str(first.run_dir), capsys=capsys)[0] == 0
    code, report = _pol(str(first.run_dir), "--against", str(again.run_dir), capsys=capsys)
    assert code == 0 and {r["verdict"] for r in report["comparison"]} == {"identical"}
    code, report = _pol(str(first.run_dir), "--against", str(other.run_dir), capsys=capsys)
    assert code == 1 and {r["verdict"] for r in report["comparison"]} == {"differs"}
    largest = max(r["max_abs_difference"] for r in report["comparison"])
    code, report = _pol(str(first.run_dir), "--against", str(other.run_dir), "--tolerance", str(largest),
                        capsys=capsys)
    assert code == 0 and {r["verdict"] for r in report["comparison"]} == {"within tolerance"}

    # a snapshot replaced by other weights: its file no longer is the one recorded
    (first.run_dir / snapshots[1]["prov:location"]).write_bytes(
        (other.run_dir / snapshots[1]["prov:location"]).read_bytes())
    code, report = _pol(str(first.run_dir), capsys=capsys)
    assert code == 1 and any("v2 (batch 4)" in p and "not the file recorded" in p for p in report["problems"])


def test_a_run_without_snapshots_cannot_be_checked(save_dir, capsys):
    with yprov4ml.start_run("www.example.org", "none", save_dir) as run:
        yprov4ml.log_metric("loss", 1.0)
    assert pol_main([str(run.run_dir)]) == 2
    assert "no proof-of-learning snapshot" in capsys.readouterr().err


KERAS_FIT = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras, yprov4ml
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
run = yprov4ml.start_run("www.example.org", "keras", sys.argv[1])
model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:16], y[:16]), verbose=0, callbacks=[
    yprov4ml.MetricLoggingCallback(log_every_batch=True, log_every_epoch=True, log_system_metrics=True),
    yprov4ml.POLLoggingCallback("dense", model, log_every_n_steps=3)])
yprov4ml.end_run()
print(run.run_dir)
"""


def test_keras_callbacks_log_metrics_and_snapshots(tmp_path, capsys):
    pytest.importorskip("keras")
    script = tmp_path / "fit.py"
    script.write_text(KERAS_FIT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "prov")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "prov", "keras")
    view = yprov4ml.load_run(run_dir)
    assert view.metric("loss").steps == list(range(8))  # 4 batches × 2 epochs, per batch
    assert view.metric("loss_epoch").steps == [0, 1] and view.metric("val_loss_epoch", "validation").steps == [0, 1]
    assert len(view.metric("process_cpu_percent").values) == 10  # system figures beside each log
    snapshots = [m for m in view.models if m["model_name"] == "dense_pol"]
    assert [m["pol_batch"] for m in snapshots] == [3, 6] and snapshots[0]["tensors"] == 4  # 2 kernels, 2 biases
    assert pol_main([str(run_dir)]) == 0


class _Loader(torch.utils.data.DataLoader):
    pass


def test_the_itwinai_logger_follows_itwinais_interface(save_dir):
    from yprov4ml.loggers.prov4ml_itwinai_logger import LoggingItemKind, ProvMLItwinAILogger  # upstream's path

    with pytest.raises(ValueError, match="log_freq"):
        ProvMLItwinAILogger(log_freq=0)
    logger = ProvMLItwinAILogger(experiment_name="itwinai", provenance_save_dir=save_dir, log_freq=2,
                                 create_graph=False, create_svg=False)
    net = torch.nn.Linear(2, 1)
    loader = _Loader(torch.utils.data.TensorDataset(torch.zeros(4, 2)), batch_size=2)
    with logger.start_logging(rank=0):
        run = yprov4ml.active_run()
        logger.save_hyperparameters({"lr": 0.1, "train_loader": loader})
        for batch_idx in range(5):  # log_freq=2: batches 0, 2, 4 are kept
            logger.log(0.5 * batch_idx, "loss", kind="metric", step=batch_idx, batch_idx=batch_idx)
        logger.log(1.0, "acc", kind=LoggingItemKind.METRIC, context="validation", step=0)  # epoch-level: kept
        logger.log(None, "system", kind="system", step=0)
        logger.log(net, "net", kind="model", step=0)
        logger.log(net, "best", kind="best_model")
        logger.log(3, "epochs", kind="param")
        logger.log((net, torch.zeros(2, 2)), "flops", kind="flops_pb", step=0)
        logger.log(object(), "a picture", kind="figure")  # another logger's kind: left alone
        logger.log(None, "t", kind="execution_time", step=0)
    assert not logger.is_initialized and yprov4ml.active_run() is None  # the logger ended the run it started
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "FINISHED" and view.params == {"lr": 0.1, "epochs": 3}
    assert view.metric("loss").steps == [0, 2, 4] and view.metric("acc", "validation").values == [1.0]
    assert view.metric("flops").values == [2 * 2 * 2 * 1.0] and "process_cpu_percent" in {k for k, _ in view.metrics}
    assert [d["label"] for d in view.datasets] == ["train_loader"] and view.datasets[0]["samples"] == 4
    assert {m["model_name"] for m in view.models} == {"net", "best"}
    assert any(m["final"] for m in view.models if m["model_name"] == "best")


def test_the_itwinai_logger_joins_a_started_run_and_logs_only_on_its_workers(save_dir):
    from yprov4ml.integrations.itwinai import ProvMLItwinAILogger

    elsewhere = ProvMLItwinAILogger(provenance_save_dir=save_dir, log_on_workers=[1, 2])
    elsewhere.create_logger_context(rank=0)  # rank 0 is not among the logging workers
    assert yprov4ml.active_run() is None and not elsewhere.should_log()
    elsewhere.log(1.0, "loss")  # nothing to record into, and nothing raised
    with yprov4ml.start_run("www.example.org", "joined", save_dir) as run:
        logger = ProvMLItwinAILogger(log_freq="batch")
        logger.create_logger_context(rank=0)
        logger.log(2.0, "loss", step=0, batch_idx=7)
        logger.destroy_logger_context()
        assert yprov4ml.active_run() is run  # the script's run is the script's to end
    assert yprov4ml.load_run(run.run_dir).metric("loss").values == [2.0]


def test_log_provenance_documents_ends_the_run_and_names_its_files(save_dir):
    yprov4ml.start_run("www.example.org", "documents", save_dir)
    yprov4ml.log_metric("loss", 1.0)
    files = yprov4ml.log_provenance_documents(create_graph=True)
    assert yprov4ml.active_run() is None
    assert [f.name for f in files] == ["prov.rank0.json", "graph.rank0.dot"] and all(f.is_file() for f in files)


def test_upstreams_module_paths_import_here():
    import prov4ml.wrappers.tracked_model
    from prov4ml.datamodel.compressor_type import CompressorType
    from yprov4ml.datamodel.metric_type import MetricsType
    from yprov4ml.loggers.prov4ml_logger import ProvMLLogger
    from yprov4ml.wrappers.indexed_dataset import IndexedDatasetWrapper
    from yprov4ml.wrappers.tracked_function import ProvenanceTrackedFunction

    assert prov4ml.wrappers.tracked_model.ProvenanceTrackedModel is yprov4ml.ProvenanceTrackedModel
    assert (CompressorType, MetricsType) == (yprov4ml.CompressorType, yprov4ml.MetricsType)
    assert ProvMLLogger is yprov4ml.ProvMLLogger and IndexedDatasetWrapper is yprov4ml.IndexedDatasetWrapper
    assert ProvenanceTrackedFunction is yprov4ml.ProvenanceTrackedFunction
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("yprov4ml.wrappers.not_upstreams")
    done = subprocess.run([sys.executable, "-c", "import sys, yprov4ml; from yprov4ml import *; "
                           "print(sorted(m for m in ('torch', 'keras', 'lightning') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr  # the wrappers and callbacks load on first use only
