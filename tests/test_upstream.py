"""Scripts written for upstream yProv4ML (3.x and its earlier generations) run here unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type

from conftest import assert_valid_prov, killed_then_recovered, only_run_dir


def test_an_earlier_generation_script_runs_under_the_old_import_name(tmp_path):
    script = tmp_path / "old.py"
    script.write_text(f"""
import torch
import prov4ml

prov4ml.start_run_ctx  # the old names are there
with prov4ml.start_run_ctx(prov_user_namespace="www.example.org", experiment_name="old",
                           provenance_save_dir=r"{tmp_path / 'prov'}", create_graph=True):
    prov4ml.log_param("lr", 0.1)
    prov4ml.log_metric("loss", 0.5, prov4ml.Contexts.TRAINING, step=0)
    prov4ml.log_execution_command("python old.py", "weights.pt")
    net = torch.nn.Linear(2, 1)
    prov4ml.save_model_version(net, "net", prov4ml.Contexts.MODELS, 0)
    print("RUN_DIR", prov4ml.get_run_dir())
    print("ARTIFACTS", prov4ml.get_artifacts_dir())
""")
    done = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", str(script)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "the 'prov4ml' import name is deprecated" in done.stderr
    run_dir = only_run_dir(tmp_path / "prov", "old")
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["RUN_DIR"] == str(run_dir) and lines["ARTIFACTS"] == str(run_dir / "artifacts" / "rank0")
    assert (run_dir / "graph.rank0.dot").is_file()  # start_run_ctx(create_graph=True) ended the run with it
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED"
    assert view.params["execution_command"] == "python old.py"
    assert view.params["execution_command_path"] == str(run_dir / "artifacts" / "rank0" / "weights.pt")
    assert view.models[0]["model_name"] == "net"
    doc = assert_valid_prov(run_dir / "prov.rank0.json")
    contexts = {a["prov:label"] for a in doc["activity"].values() if prov_type(a) == "yprov:Context"}
    assert {"training", "models"} <= contexts


def test_start_run_ctx_ends_a_failing_body_failed(save_dir):
    with pytest.raises(RuntimeError, match="boom"):
        with yprov4ml.start_run_ctx("www.example.org", "ctx", save_dir) as run:
            yprov4ml.log_metric("loss", 1.0)
            raise RuntimeError("boom")
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "FAILED" and "boom" in view.error
    with pytest.raises(yprov4ml.RunNotActiveError):
        yprov4ml.get_run_dir()
    with yprov4ml.start_run("www.example.org", "ctx", save_dir):
        with pytest.raises(ValueError, match="non-empty string"):
            yprov4ml.log_execution_command("")


def _used_by(doc: dict, entity_label: str) -> str:
    entity = next(k for k, v in doc["entity"].items() if v.get("prov:label") == entity_label)
    return next(u["prov:activity"] for u in doc["used"].values() if u["prov:entity"] == entity)


def test_a_param_with_a_context_is_used_by_that_context_and_keeps_its_source(save_dir):
    with yprov4ml.start_run("www.example.org", "params", save_dir) as run:
        yprov4ml.log_param("lr", 0.1, "Training", source="config.yaml", is_input=True)  # upstream's form
        yprov4ml.log_param("seed", 7)
        with pytest.raises(yprov4ml.ParamConflictError, match="source"):
            yprov4ml.log_param("bad", 1, source=3)
    doc = assert_valid_prov(run.prov_path)
    assert _used_by(doc, "lr") == "run:rank-0/context/training" and _used_by(doc, "seed") == "run:rank-0"
    lr = next(v for v in doc["entity"].values() if v.get("prov:label") == "lr")
    assert lr["yprov:source"] == "config.yaml" and lr["yprov:is_input"] is True
    assert yprov4ml.load_run(run.run_dir).params == {"lr": 0.1, "seed": 7}


def test_a_killed_run_recovers_its_params_contexts(tmp_path):
    run_dir = killed_then_recovered(tmp_path, "yprov4ml.log_param('lr', 0.5, 'validation', 'cli')")
    doc = assert_valid_prov(run_dir / "prov.rank0.json")
    assert _used_by(doc, "lr") == "run:rank-0/context/validation"


def test_log_metric_takes_upstreams_source_in_either_place(save_dir):
    with yprov4ml.start_run("www.example.org", "sources", save_dir) as run:
        yprov4ml.log_metric("loss", 0.5, yprov4ml.Context.TRAINING, 0, "train_loader")  # upstream's 5th: source
        yprov4ml.log_metric("loss", 0.4, yprov4ml.Context.TRAINING, 1, "train_loader", 1_700_000_000.0)
        yprov4ml.log_metric("acc", 0.9, "Validation", 0, source="val_loader")
        yprov4ml.log_metric("acc", 0.8, "validation", 1, source="holdout")
        yprov4ml.log_metric("plain", 1.0, step=0, timestamp=1_700_000_001.0)
        with pytest.raises(yprov4ml.InvalidMetricError, match="source"):
            yprov4ml.log_metric("loss", 0.3, source=5)
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("loss").values == [0.5, 0.4] and view.metric("loss").times[1] == 1_700_000_000.0
    assert view.metric("plain").times == [1_700_000_001.0]
    doc = assert_valid_prov(run.prov_path)
    series = {v["yprov:key"]: v for v in doc["entity"].values() if prov_type(v) == "yprov:MetricSeries"}
    assert series["loss"]["yprov:source"] == "train_loader"
    assert series["acc"]["yprov:source"] == '["val_loader", "holdout"]'  # PROV-JSON keeps a list as text
    assert "yprov:source" not in series["plain"]


def test_model_and_dataset_directives_take_either_argument_order(save_dir, tmp_path):
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(2)}, checkpoint)
    data = torch.utils.data.TensorDataset(torch.zeros(8, 2))
    with yprov4ml.start_run("www.example.org", "orders", save_dir) as run:
        yprov4ml.save_model_version("final2", str(checkpoint))  # upstream: (name, model); a path is the model
        yprov4ml.save_model_version(str(checkpoint), "final3")  # the paper's order, with a path
        yprov4ml.save_model_version("net", torch.nn.Linear(2, 1))
        yprov4ml.log_model("best", torch.nn.Linear(2, 1))
        yprov4ml.log_dataset("train", data)
        yprov4ml.log_dataset(data, "again")
        with pytest.raises(yprov4ml.ArtifactError, match="does not exist.*by keyword"):
            yprov4ml.save_model_version("a", "b")
        with pytest.raises(yprov4ml.ArtifactError, match="both name existing files"):
            yprov4ml.log_model(str(checkpoint), str(checkpoint))
    view = yprov4ml.load_run(run.run_dir)
    models = {m["model_name"]: m for m in view.models}
    assert set(models) == {"final2", "final3", "net", "best"}  # nothing recorded by the refused calls
    assert models["final2"]["model_class"] == "checkpoint file" and models["final2"]["checkpoint_format"] == "pt"
    assert models["net"]["model_class"] == "Linear" and models["best"]["final"] is True
    assert [d["label"] for d in view.datasets] == ["train", "again"]
    assert all(d["samples"] == 8 for d in view.datasets)


def test_upstream_options_and_helpers_do_what_they_say(save_dir):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4))
    net[0].bias.requires_grad_(False)
    with yprov4ml.start_run("www.example.org", "helpers", save_dir, disable_codecarbon=True,
                            metrics_file_type=yprov4ml.MetricsType.CSV) as run:
        yprov4ml.log_model_memory_footprint(net, "tiny")
        yprov4ml.log_metric("loss", 1.0)
        with pytest.warns(RuntimeWarning, match="energy tracking is off"):
            yprov4ml.log_carbon_metrics()
        with pytest.raises(TypeError, match="torch.nn.Module"):
            yprov4ml.log_model_memory_footprint("not a model")
    view = yprov4ml.load_run(run.run_dir)
    params = 10 * 4 + 4 + 4 + 4  # Linear weight and bias, BatchNorm weight and bias
    weights = params * 4  # float32
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())  # BatchNorm's running stats and count
    assert view.params["model_name"] == "tiny" and view.params["total_params"] == params
    assert view.params["memory_of_model"] == pytest.approx((weights + buffers) / 1e6)
    trainable = weights - 4 * 4  # the frozen bias has neither gradient nor optimizer state
    assert view.params["total_memory_load_of_model"] == pytest.approx((weights + buffers + 2 * trainable) / 1e6)
    assert not any(c == "training" and k.startswith("energy") for k, c in view.metrics)  # nothing measured
    assert (run.run_dir / "metrics" / "training" / "loss.rank0.csv").is_file()


def test_nested_contexts_as_upstreams_examples_build_them(save_dir):
    with yprov4ml.start_run("www.example.org", "lod", save_dir) as run:
        yprov4ml.log_context("TRAINING_LOD2", is_subcontext_of=yprov4ml.Context.TRAINING, source_of_data="loader")
        yprov4ml.create_context("TRAINING_LOD3", "TRAINING_LOD2")
        yprov4ml.log_metric("loss", 1.0, "TRAINING_LOD3", 0)
        yprov4ml.log_metric("loss", 2.0, yprov4ml.Context.TRAINING, 0)
        yprov4ml.log_param("loss_fn", "MSELoss", yprov4ml.Context.TRAINING_LOD2)  # declared: now a Context name
        with pytest.raises(ValueError, match="loop of contexts"):
            yprov4ml.log_context("training", is_subcontext_of="TRAINING_LOD3")
        with pytest.raises(ValueError, match="one parent"):
            yprov4ml.log_context("TRAINING_LOD3", is_subcontext_of="validation")
    doc = assert_valid_prov(run.prov_path)
    informed = {v["prov:informed"]: v["prov:informant"] for v in doc["wasInformedBy"].values()}
    assert informed["run:rank-0/context/training_lod3"] == "run:rank-0/context/training_lod2"
    assert informed["run:rank-0/context/training_lod2"] == "run:rank-0/context/training"
    assert informed["run:rank-0/context/training"] == "run:rank-0"
    lod2 = doc["activity"]["run:rank-0/context/training_lod2"]
    assert lod2["yprov:parent_context"] == "training" and lod2["yprov:source_of_data"] == "loader"
    assert any(u["prov:activity"] == "run:rank-0/context/training_lod2" for u in doc["used"].values())
    view = yprov4ml.load_run(run.run_dir)
    assert view.context_path("training_lod3") == "training/training_lod2/training_lod3"
    shown = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "show", str(run.run_dir)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "loss@training/training_lod2/training_lod3" in shown and "loss@training " in shown


def test_compare_and_plot_group_series_by_the_context_hierarchy(save_dir, tmp_path):
    from yprov4ml.tools.compare import compare
    from yprov4ml.tools.plot import plot

    for lr in (0.1, 0.2):
        with yprov4ml.start_run("www.example.org", "lodsweep", save_dir):
            yprov4ml.log_param("lr", lr)
            yprov4ml.create_context("TRAINING_LOD2", "training")
            yprov4ml.log_metric("loss", lr, "training", 0)
            yprov4ml.log_metric("loss", 10 * lr, "TRAINING_LOD2", 0)
            yprov4ml.log_metric("loss", 5 * lr, "validation", 0)
    table = compare([save_dir / "lodsweep"], sort_by="loss@training_lod2", descending=True)
    assert list(table.metrics) == ["loss@training", "loss@training/training_lod2", "loss@validation"]
    assert table.metrics["loss@training/training_lod2"] == [2.0, 1.0]  # sorted by the sub-context's series
    out, _ = plot([save_dir / "lodsweep"], "loss@training", tmp_path / "lod.svg")
    labels = {line.split(" — ")[0] for line in out.read_text().split("<!-- ")[1:] if " — " in line}
    assert labels == {"loss@training", "loss@training/training_lod2"}  # the context and what is part of it


def test_log_artifact_in_upstreams_form(save_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("lr sweep\n")
    with yprov4ml.start_run("www.example.org", "artifacts", save_dir) as run:
        yprov4ml.log_artifact("notes", str(notes), yprov4ml.Context.TRAINING)  # upstream: name, path, context
        yprov4ml.log_artifact("cfg", str(notes), "validation", "config-loader", 3, True, "configs", False, True,
                              {"owner": "ada", "version": 2})
        yprov4ml.log_artifact(artifact_name="ref", artifact_path=str(notes), log_copy_in_prov_directory=False)
        yprov4ml.log_artifact(str(notes), yprov4ml.Context.TRAINING, name="paper")  # the paper's form
        with pytest.raises(yprov4ml.ArtifactError, match="other_attrs key"):
            yprov4ml.log_artifact("bad", str(notes), other_attrs={"a b": 1})
        with pytest.raises(yprov4ml.ArtifactError, match="does not exist"):
            yprov4ml.log_artifact("ghost", str(tmp_path / "missing.txt"))
    doc = assert_valid_prov(run.prov_path)
    artifacts = {v["prov:label"]: v for v in doc["entity"].values() if prov_type(v) == "yprov:Artifact"}
    assert set(artifacts) == {"notes", "cfg", "ref", "paper"}  # the refused calls recorded nothing
    assert artifacts["notes"]["prov:location"] == "artifacts/rank0/notes.txt"
    assert artifacts["notes"]["yprov:context"] == "training"
    cfg = artifacts["cfg"]
    assert cfg["prov:location"] == "artifacts/rank0/configs/notes.txt" and cfg["yprov:step"]["$"] == "3"
    assert cfg["yprov:source"] == "config-loader" and cfg["yprov:is_input"] is True
    assert cfg["yprov:owner"] == "ada" and cfg["yprov:version"]["$"] == "2" and cfg["yprov:context"] == "validation"
    assert artifacts["ref"]["prov:location"] == str(notes.resolve())  # referenced, not copied
    assert (run.run_dir / "artifacts" / "rank0" / "configs" / "notes.txt").read_text() == "lr sweep\n"
    assert _used_by(doc, "cfg") == "run:rank-0/context/validation"


def test_upstream_model_options_are_recorded_not_ignored(save_dir, tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    checkpoint = tmp_path / "pretrained.pt"
    torch.save(net.state_dict(), checkpoint)
    with yprov4ml.start_run("www.example.org", "model-options", save_dir) as run:
        for epoch in range(2):  # upstream's example: (name, model, context, epoch)
            yprov4ml.save_model_version("mnist_model_version", net, yprov4ml.Context.MODELS, epoch)
        yprov4ml.save_model_version("latest", net, incremental=False)
        yprov4ml.save_model_version("latest", net, None, "trainer", 7, False, other_attrs={"note": "second"})
        yprov4ml.save_model_version("hub", str(checkpoint), log_copy_in_prov_directory=False, is_input=True)
        yprov4ml.log_model("mnist_model_final", net, log_model_layers=True, is_input=False)
        yprov4ml.log_model("bare", net, None, "me", False)  # upstream's 5th positional: log_model_info
    view = yprov4ml.load_run(run.run_dir)
    models = {(m["model_name"], m["version"]): m for m in view.models}
    assert models["mnist_model_version", 2]["step"] == 1 and models["mnist_model_version", 2]["context"] == "models"
    latest = [m for m in view.models if m["model_name"] == "latest"]
    assert len(latest) == 1 and latest[0]["prov:location"] == "models/rank0/latest.pt"  # one file per name
    assert latest[0]["source"] == "trainer" and latest[0]["step"] == 7 and latest[0]["note"] == "second"
    hub = models["hub", 1]
    assert hub["prov:location"] == str(checkpoint.resolve()) and hub["is_input"] is True  # referenced, not copied
    assert not (run.run_dir / "models" / "rank0" / "hub.v1.pt").exists()
    final = models["mnist_model_final", 1]
    layers = json.loads((run.run_dir / final["layers_description"]).read_text())["layers"]
    assert [(layer["name"], layer["type"], layer["parameters"]) for layer in layers] == \
        [("0", "Linear", 15), ("1", "ReLU", 0), ("2", "Linear", 4)]
    assert layers[0]["parameter_shapes"] == {"weight": [3, 4], "bias": [3]}
    assert any(a["prov:location"] == final["layers_description"] for a in view.artifacts)
    assert models["bare", 1]["source"] == "me" and "parameter_count" not in models["bare", 1]
    used = _used_entities(run.run_dir)
    assert any(e.get("yprov:model_name") == "hub" for e in used)  # an input model is used, not generated


def _used_entities(run_dir):
    doc = json.loads((run_dir / "prov.rank0.json").read_text())
    used = {u["prov:entity"] for u in doc.get("used", {}).values()}
    return [doc["entity"][e] for e in used if e in doc["entity"]]


def test_upstream_dataset_options_and_keywords(save_dir):
    torch = pytest.importorskip("torch")
    data = torch.utils.data.TensorDataset(torch.arange(20.0).reshape(10, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    with yprov4ml.start_run("www.example.org", "dataset-options", save_dir) as run:
        yprov4ml.log_dataset("train_dataset", loader, yprov4ml.Context.TRAINING, "synthetic", True, {"split": "a"})
        yprov4ml.log_dataset(dataset_label="val_dataset", dataset=data, log_dataset_info=False)
        with pytest.raises(TypeError, match="unexpected keyword argument 'shuffle'"):
            yprov4ml.log_dataset("x", data, shuffle=True)
    sets = {d["label"]: d for d in yprov4ml.load_run(run.run_dir).datasets}
    assert set(sets) == {"train_dataset", "val_dataset"}
    train, val = sets["train_dataset"], sets["val_dataset"]
    assert train["batches"] == 3 and train["source"] == "synthetic" and train["split"] == "a"
    assert "samples" not in val and val["sha256"] == train["sha256"]  # described less, still fingerprinted


def test_log_source_code_with_git_stores_the_commit_and_the_uncommitted_diff(save_dir, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text("print('v1')\n")
    for command in (["init", "-q"], ["add", "train.py"],
                    ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "v1"]):
        subprocess.run(["git", *command], cwd=repo, check=True)
    script.write_text("print('v2')\n")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    with yprov4ml.start_run("www.example.org", "source", save_dir) as run:
        yprov4ml.log_source_code(str(script), use_git=True)
        with pytest.raises(ValueError, match="not inside a git work tree"):
            yprov4ml.log_source_code(str(tmp_path / "outside.py") if (tmp_path / "outside.py").write_text("x")
                                     else None, True)
    artifacts = {a["role"]: a for a in yprov4ml.load_run(run.run_dir).artifacts}
    code, diff = artifacts["source code"], artifacts["source code diff"]
    assert code["git_commit"] == commit and code["git_dirty"] is True
    assert (run.run_dir / code["prov:location"]).read_text() == "print('v2')\n"
    patch = (run.run_dir / diff["prov:location"]).read_text()
    assert "-print('v1')" in patch and "+print('v2')" in patch and diff["applies_to"] == code["prov:location"]
    used = {e.get("prov:label") for e in _used_entities(run.run_dir)}
    assert {"source code train.py", "uncommitted changes of train.py"} <= used


def test_final_metrics_fold_every_point_into_a_parameter(save_dir):
    with yprov4ml.start_run("www.example.org", "final", save_dir) as run:
        yprov4ml.register_final_metric("loss", 10.0, yprov4ml.FoldOperation.MIN)
        yprov4ml.register_final_metric("samples", 0, "add")
        with pytest.raises(ValueError, match="not one of ADD, SUBTRACT"):
            yprov4ml.register_final_metric("x", 0, "mean")
        for step, loss in enumerate([3.0, 1.5, 2.0]):
            yprov4ml.log_metric("loss", loss, yprov4ml.Context.TRAINING, step)
            yprov4ml.log_metric("samples", 32, yprov4ml.Context.TRAINING, step)
        yprov4ml.log_metric("samples", 8, yprov4ml.Context.VALIDATION, 0)
    params = yprov4ml.load_run(run.run_dir).params
    assert params["loss"] == 1.5 and params["samples"] == 104.0


def test_unify_experiments_writes_every_run_of_the_experiment_in_one_document(save_dir):
    for n in range(2):
        yprov4ml.start_run("www.example.org", "unified", save_dir, unify_experiments=True)
        yprov4ml.log_metric("loss", 1.0 / (n + 1))
        yprov4ml.end_run()
    unified = save_dir / "unified" / "experiment.prov.json"
    doc = json.loads(unified.read_text())
    assert len(doc["bundle"]) == 2
    assert_valid_prov(unified)


def test_the_upstream_compressor_names_choose_the_codec(save_dir):
    pytest.importorskip("zarr")
    with yprov4ml.start_run("www.example.org", "codec", save_dir, metrics_file_type=yprov4ml.MetricsType.ZARR,
                            use_compressor=yprov4ml.CompressorType.GZIP) as run:
        yprov4ml.log_metric("loss", 0.5)
    with pytest.raises(ValueError, match="does not apply to netcdf"):
        yprov4ml.start_run("www.example.org", "codec", save_dir, metrics_file_type="netcdf",
                           use_compressor=yprov4ml.CompressorType.LZ4)
    series = next(iter(yprov4ml.load_run(run.run_dir).metrics))
    assert series == ("loss", "training")
    assert list(run.run_dir.rglob("*.zarr"))


KERAS_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import keras, yprov4ml
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
run = yprov4ml.start_run("www.example.org", "keras", sys.argv[1])
yprov4ml.log_model("keras_model", model, log_model_layers=True)
yprov4ml.end_run()
print(run.run_dir)
"""


def test_a_keras_model_is_saved_in_keras_format(save_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("keras") is None:  # not imported here: Keras picks its backend at import
        pytest.skip("keras is not installed (pip install 'yprov4ml[keras]')")
    script = tmp_path / "keras_script.py"
    script.write_text(KERAS_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(save_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = yprov4ml.load_run(done.stdout.strip().splitlines()[-1]).run_dir
    model = yprov4ml.load_run(run_dir).models[0]
    assert model["prov:location"].endswith(".keras") and model["checkpoint_format"] == "keras"
    assert model["parameter_count"] == 19 and model["framework"].startswith("keras")
    import zipfile

    assert "config.json" in zipfile.ZipFile(run_dir / model["prov:location"]).namelist()  # Keras's own format
