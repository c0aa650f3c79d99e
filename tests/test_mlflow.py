"""The two-way MLflow link against real MLflow: a sqlite store, a file store, and a real `mlflow server`."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from datetime import datetime
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.integrations import mlflow_mirror
from yprov4ml.integrations.mlflow_names import FLOAT_MAX, to_ms
from yprov4ml.prov.reader import load_run

from conftest import ROOT, assert_valid_prov, only_run_dir

mlflow = pytest.importorskip("mlflow", reason="pip install 'yprov4ml[mlflow]' (the dev install has it)")
from mlflow import MlflowClient  # noqa: E402

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")

PARAMS = {"lr": 0.001, "epochs": 3, "use_amp": False, "name": "0.5", "layers": [64, 32],
          "optimizer": {"kind": "adam", "betas": [0.9, 0.999]}, "odd name!": "x", "long": "y" * 7000}


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env={**os.environ, **(env or {})})


def record(save_dir: Path, experiment: str = "mlflow-link", **start) -> Path:
    """A finished run with typed params, odd values (NaN, ±inf, huge steps), a model version and a file."""
    torch = pytest.importorskip("torch")
    yprov4ml.start_run("www.example.org", experiment, save_dir, save_after_n_logs=300, **start)
    yprov4ml.log_params(PARAMS)
    t0 = 1.7e9
    for step in range(2500):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step, timestamp=t0 + step * 0.0123456)
    for step, value in enumerate([math.nan, math.inf, -math.inf, 1e-300, -0.0]):
        yprov4ml.log_metric("odd/key?", value, "validation", step * 10**12)
    yprov4ml.log_metric("acc", 0.9, "evaluation")
    model = torch.nn.Linear(3, 1)
    data = torch.utils.data.TensorDataset(torch.arange(12.0).reshape(4, 3), torch.zeros(4, 1))
    yprov4ml.log_dataset("train_data", torch.utils.data.DataLoader(data, batch_size=2), "training")
    yprov4ml.save_model_version(model, "net", "training", 0, mlflow_format=True)  # MLflow's torch flavour too
    notes = save_dir.parent / "notes.txt"
    notes.write_text("hello mlflow\n")
    yprov4ml.log_artifact(notes, "evaluation")
    return yprov4ml.end_run()


def all_artifacts(client: MlflowClient, mlflow_id: str, folder: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(mlflow_id, folder):
        found |= all_artifacts(client, mlflow_id, item.path) if item.is_dir else {item.path}
    return found


def same_value(a: float, b: float) -> bool:
    """Equal, NaN included (MLflow's stores keep -0.0 as 0.0, which compares equal)."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_mlflow_copy(client: MlflowClient, mlflow_id: str, prov_path: Path, infinity_as_max: bool) -> None:
    """Every param, point, tag, file, time and the status of the local record are in the MLflow run."""
    view = load_run(prov_path)
    run = client.get_run(mlflow_id)
    params = run.data.params
    assert params["lr"] == "0.001" and params["epochs"] == "3" and params["use_amp"] == "false"
    assert params["name"] == "0.5" and json.loads(params["optimizer"]) == PARAMS["optimizer"]
    assert params["odd name_"] == "x" and len(params["long"]) == 6000  # MLflow's own limits: tags keep the exact value
    tags = run.data.tags
    assert tags["yprov4ml.run_id"] == view.run_id and tags["yprov4ml.rank"] == "0"
    assert tags["yprov4ml.status"] == "FINISHED" and tags["mlflow.user"] == view.user
    assert set(tags["yprov4ml.contexts"].split(",")) == {"training", "validation", "evaluation"}
    assert run.info.status == "FINISHED"
    assert run.info.start_time == to_ms(datetime.fromisoformat(view.start_time).timestamp())
    assert run.info.end_time == to_ms(datetime.fromisoformat(view.end_time).timestamp())
    for (key, context), data in view.metrics.items():
        mlflow_key = {"odd/key?": "validation/odd/key_"}.get(key, f"{context}/{key}")
        history = sorted(client.get_metric_history(mlflow_id, mlflow_key), key=lambda m: (m.step, m.timestamp))
        assert [m.step for m in history] == data.steps
        assert [m.timestamp for m in history] == [to_ms(t) for t in data.times]
        expected = [FLOAT_MAX * (1 if v > 0 else -1) if infinity_as_max and math.isinf(v) else v for v in data.values]
        assert all(same_value(m.value, v) for m, v in zip(history, expected)), (key, history[:6])
    # the record's own files at their places, the PROV-JSON and the one file of names MLflow's keys lose
    files = all_artifacts(client, mlflow_id)
    assert {"models/rank0/net.v1.pt", "artifacts/rank0/notes.txt", "metrics.rank0.ymetric", "journal.rank0.jsonl",
            "provenance/prov.rank0.json", "provenance/mlflow_names.json"} <= files
    assert not [t for t in tags if t.startswith(("yprov4ml.series.", "yprov4ml.param."))]  # no tag per name
    # MLflow's Dataset and Model columns: the dataset as an input, the model version as a logged model
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "train_data" and dataset.dataset.digest == view.datasets[0]["sha256"][:36]
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "training"
    (output,) = run.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.name == "net-v1" and model.status == "READY" and model.model_type == "torch"
    assert model.tags["yprov4ml.sha256"] == view.models[0]["sha256"]
    assert model.params["parameter_count"] == "4" and model.tags["yprov4ml.flavour"] == "pytorch"
    check_torch_flavour(model, client.tracking_uri, torch_input=[[1.0, 2.0, 3.0]],
                        expected=view.models[0], run_dir=prov_path.parent)


def check_torch_flavour(model, tracking_uri: str, torch_input: list, expected: dict, run_dir: Path) -> None:
    """The logged model loads with mlflow.pytorch as the module the run saved: same weights, same output."""
    import mlflow.pytorch
    import torch

    local = mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location, tracking_uri=tracking_uri)
    assert (Path(local) / "MLmodel").is_file() and (Path(local) / Path(expected["prov:location"]).name).is_file()
    loaded = mlflow.pytorch.load_model(local)
    state = torch.load(run_dir / expected["prov:location"], weights_only=True)  # the run's own checkpoint
    assert isinstance(loaded, torch.nn.Module)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()) and state
    pyfunc = mlflow.pyfunc.load_model(local)  # MLflow's generic loader serves it too
    with torch.no_grad():
        assert torch.allclose(torch.as_tensor(pyfunc.predict(torch.tensor(torch_input).numpy())),
                              loaded(torch.tensor(torch_input)))


def check_imported(original: Path, imported: Path) -> None:
    """The imported record is the original: the same document, record by record, and every file it names."""
    assert_valid_prov(imported)
    assert json.loads(imported.read_text()) == json.loads(original.read_text())  # ids, types, attributes, relations
    for name in ("metrics.rank0.ymetric", "journal.rank0.jsonl", "models/rank0/net.v1.pt", "artifacts/rank0/notes.txt",
                 "models/rank0/net.v1.mlflow/MLmodel", "models/rank0/net.v1.mlflow/data/model.pth"):
        assert (imported.parent / name).read_bytes() == (original.parent / name).read_bytes(), name
    assert json.loads((imported.parent / "imported_from_mlflow.json").read_text())["rank"] == 0
    before, after = load_run(original), load_run(imported)
    assert after.params == before.params
    assert set(after.metrics) == set(before.metrics)
    for ident, data in before.metrics.items():
        back = after.metrics[ident]
        assert back.steps == data.steps and all(map(same_value, back.values, data.values)), ident
        assert max(abs(a - b) for a, b in zip(back.times, data.times)) <= 0.0005
    assert after.problems == []


def test_export_to_sqlite_twice_and_import_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite store's artifacts under ./mlruns
    prov_path = record(tmp_path / "prov")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", uri, "-q")
    assert first.returncode == 0, first.stderr
    assert "2506 metric points" in first.stdout
    again = cli("export", "mlflow", str(tmp_path / "prov" / "mlflow-link"), "--tracking-uri", uri, "-q")
    assert again.returncode == 0 and "already there" in again.stdout, again.stdout + again.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("mlflow-link").experiment_id])
    assert len(runs) == 1
    check_mlflow_copy(client, runs[0].info.run_id, prov_path, infinity_as_max=True)

    back = cli("import", "mlflow", "--tracking-uri", uri, "--experiment", "mlflow-link", "-o", str(tmp_path / "in"))
    assert back.returncode == 0, back.stderr
    imported = Path(back.stdout.split()[0])
    check_imported(prov_path, imported)
    assert json.loads((imported.parent / "imported_from_mlflow.json").read_text())["mlflow_run_id"] == \
        runs[0].info.run_id
    for command in (["show", str(imported.parent)], ["validate", str(imported)], ["compare", str(imported.parent),
                                                                                 str(prov_path.parent)]):
        done = cli(*command)
        assert done.returncode == 0, (command, done.stderr)
    assert "0.5" in cli("show", str(imported.parent)).stdout

    from yprov4wfs_bridge import Workflow, build, validate_crate  # the bridge takes it as one of a task's runs

    with Workflow("from-mlflow", directory=tmp_path / "wf") as wf:
        with wf.task("train") as task:
            task.attach(imported.parent)
    result = build(tmp_path / "wf", svg=False)
    assert result.graph.runs_of("train") == [load_run(imported).run_id] and result.gaps == []
    assert validate_crate(result.crate).passed


def test_a_half_finished_export_is_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prov_path = record(tmp_path / "prov")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    view = load_run(prov_path)
    exp = client.create_experiment("mlflow-link")
    torn = client.create_run(exp, tags={"yprov4ml.run_id": view.run_id, "yprov4ml.rank": "0"})  # no complete tag
    assert cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", uri, "-q").returncode == 0
    runs = client.search_runs([exp])
    assert [r.info.run_id for r in runs] != [torn.info.run_id] and len(runs) == 1
    assert client.get_run(torn.info.run_id).info.lifecycle_stage == "deleted"
    check_mlflow_copy(client, runs[0].info.run_id, prov_path, infinity_as_max=True)


def test_file_store_works_when_mlflow_allows_it_and_says_how_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prov_path = record(tmp_path / "prov")
    uri = (tmp_path / "mlruns").as_uri()
    refused = cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", uri, env={"MLFLOW_ALLOW_FILE_STORE": ""})
    assert refused.returncode == 2 and "MLFLOW_ALLOW_FILE_STORE=true" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", uri, "-q",
               env={"MLFLOW_ALLOW_FILE_STORE": "true"})
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("mlflow-link").experiment_id])
    check_mlflow_copy(client, found.info.run_id, prov_path, infinity_as_max=False)  # files keep ±inf


def test_bad_input_gets_a_message_not_a_traceback(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    for args, expected in [
        (["export", "mlflow", str(tmp_path / "missing"), "--tracking-uri", "sqlite:///x.db"], "does not exist"),
        (["export", "mlflow", str(tmp_path)], "--tracking-uri"),
        (["import", "mlflow", "--tracking-uri", dead, "--experiment", "e", "-o", str(tmp_path)], "no MLflow"),
        (["import", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--run-id", "nope", "-o",
          str(tmp_path)], "nope"),
    ]:
        done = cli(*args, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""})
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


# ------------------------------------------------------------------ a real tracking server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`mlflow server` on a local port, with a sqlite store and served artifacts in ``root``."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        self.process = subprocess.Popen([str(mlflow_cli), "server", "--backend-store-uri",
                                         f"sqlite:///{self.root / 'mlflow.db'}", "--host", "127.0.0.1", "--port",
                                         str(self.port), "--workers", "1"], cwd=self.root,
                                        stdout=subprocess.DEVNULL, stderr=open(self.root / "server.log", "w"))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer: {(self.root / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield running
    running.stop()


def mlflow_run_of(client: MlflowClient, experiment: str, run_id: str, rank: str) -> object | None:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id],
                              f"tags.`yprov4ml.run_id` = '{run_id}' and tags.`yprov4ml.rank` = '{rank}'")
    return runs[0] if runs else None


def test_export_and_import_through_an_http_server(server, tmp_path):
    prov_path = record(tmp_path / "prov", experiment="over-http")
    done = cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", server.uri, "-q")
    assert done.returncode == 0, done.stderr
    client = MlflowClient(server.uri)
    found = mlflow_run_of(client, "over-http", load_run(prov_path).run_id, "0")
    check_mlflow_copy(client, found.info.run_id, prov_path, infinity_as_max=True)
    back = cli("import", "mlflow", "--tracking-uri", server.uri, "--run-id", found.info.run_id, "-o", str(tmp_path / "in"))
    assert back.returncode == 0, back.stderr
    check_imported(prov_path, Path(back.stdout.split()[0]))


LIVE_SCRIPT = """
import sys, time
from pathlib import Path
import yprov4ml
out = Path(sys.argv[1])
run = yprov4ml.start_run("www.example.org", "live", out / "prov", flush_interval_s=0.2)
yprov4ml.log_params({"lr": 0.01, "batch_size": 32})
for step in range(300):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step)
(out / "ready").write_text(run.run_id)
deadline = time.time() + 120
while not (out / "go").exists() and time.time() < deadline:
    time.sleep(0.05)
for step in range(300, 700):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step)
import torch
yprov4ml.save_model_version(torch.nn.Linear(2, 1), "net", "training", 699)  # mirrored: the torch flavour too
yprov4ml.end_run()
"""


def test_live_mirror_shows_points_while_the_run_goes_on(server, tmp_path):
    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT)
    training = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "YPROV4ML_MLFLOW_TRACKING_URI": server.uri})
    client = MlflowClient(server.uri)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        run_id = (tmp_path / "ready").read_text()
        seen = []
        while time.monotonic() < deadline and len(seen) < 300:
            found = mlflow_run_of(client, "live", run_id, "0")
            seen = client.get_metric_history(found.info.run_id, "training/loss") if found else []
            time.sleep(0.2)
        assert len(seen) == 300, "the first 300 points did not reach MLflow while the run was going on"
        assert found.info.status == "RUNNING" and found.data.params == {"lr": "0.01", "batch_size": "32"}
    finally:
        (tmp_path / "go").write_text("")
        _, stderr = training.communicate(timeout=180)
    assert training.returncode == 0, stderr
    assert "Warning" not in stderr, stderr
    prov_path = only_run_dir(tmp_path / "prov", "live") / "prov.rank0.json"
    found = mlflow_run_of(client, "live", run_id, "0")
    assert found.info.status == "FINISHED" and found.data.tags["yprov4ml.export_complete"] == "true"
    history = sorted(client.get_metric_history(found.info.run_id, "training/loss"), key=lambda m: m.step)
    local = load_run(prov_path).metric("loss")
    assert [m.step for m in history] == local.steps == list(range(700))  # each point once
    assert [m.value for m in history] == local.values
    assert [m.timestamp for m in history] == [to_ms(t) for t in local.times]
    again = cli("export", "mlflow", str(prov_path.parent), "--tracking-uri", server.uri, "-q")
    assert "already there" in again.stdout, again.stdout + again.stderr  # the mirror is the export
    (output,) = client.get_run(found.info.run_id).outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.tags["yprov4ml.flavour"] == "pytorch"  # a mirrored torch module is saved in MLflow's format
    check_torch_flavour(logged, server.uri, [[0.5, -1.0]], load_run(prov_path).models[0], prov_path.parent)

    shot = ui_screenshot(server, found, tmp_path)
    if os.environ.get("YPROV4ML_DOCS_SCREENSHOT"):  # how docs/img/mlflow-run.png is made
        shutil.copy(shot, os.environ["YPROV4ML_DOCS_SCREENSHOT"])


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


def ui_screenshot(server: Server, run: object, tmp_path: Path) -> Path:
    """The run's page in MLflow's own UI, in headless Chromium: its params and a metric are on it."""
    page = f"{server.uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'chr'}",
             "--window-size=1400,1800", "--virtual-time-budget=30000"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    for text in ("batch_size", "32", "lr", "0.01", "training/loss", run.data.tags["yprov4ml.run_id"]):
        assert text in dom, f"{text!r} is not on the MLflow UI page {page}"
    shot = tmp_path / "mlflow-run.png"
    subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    return shot


def test_unreachable_mlflow_never_breaks_training_and_gets_the_rest_at_end(tmp_path, monkeypatch):
    late = Server(tmp_path / "late")
    monkeypatch.setattr(mlflow_mirror, "RETRY_AT_END_S", 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = yprov4ml.start_run("www.example.org", "late", tmp_path / "prov", mlflow_tracking_uri=late.uri,
                                 flush_interval_s=0.2)
        yprov4ml.log_param("lr", 0.1)
        for step in range(500):
            yprov4ml.log_metric("loss", float(step), "training", step)
        time.sleep(1.5)  # several looks at MLflow, all refused
        away = [w for w in caught if "cannot reach" in str(w.message)]
        assert len(away) == 1 and "Recording goes on locally" in str(away[0].message)
        late.start()
        try:
            for step in range(500, 800):
                yprov4ml.log_metric("loss", float(step), "training", step)
            path = yprov4ml.end_run()
            client = MlflowClient(late.uri)
            found = mlflow_run_of(client, "late", run.run_id, "0")
            history = client.get_metric_history(found.info.run_id, "training/loss")
            assert sorted(m.step for m in history) == list(range(800))
            assert found.data.params == {"lr": "0.1"} and found.info.status == "FINISHED"
        finally:
            late.stop()
    assert len([w for w in caught if "cannot reach" in str(w.message)]) == 1
    assert_valid_prov(path)
    assert load_run(path).metric("loss").steps == list(range(800))


def test_mirror_to_a_dead_server_costs_end_run_a_bounded_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow_mirror, "RETRY_AT_END_S", 1.0)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.warns(RuntimeWarning) as caught:
        yprov4ml.start_run("www.example.org", "dead", tmp_path / "prov", mlflow_tracking_uri=dead)
        yprov4ml.log_metric("loss", 1.0)
        started = time.monotonic()
        path = yprov4ml.end_run()
        waited = time.monotonic() - started
    assert waited < 5
    messages = [str(w.message) for w in caught]
    assert any("yprov4ml export mlflow" in m for m in messages)  # says how to send the run later
    assert_valid_prov(path)


def test_mirror_needs_mlflow_installed_and_a_uri(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="tracking URI"):
        yprov4ml.start_run("www.example.org", "bad", tmp_path / "prov", mlflow_tracking_uri=" ")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "mlflow" else object())
    with pytest.raises(yprov4ml.errors.MissingDependencyError, match=r"yprov4ml\[mlflow\]"):
        yprov4ml.start_run("www.example.org", "bad", tmp_path / "prov", mlflow_tracking_uri="sqlite:///x.db")
    assert not (tmp_path / "prov").exists()  # refused before anything was created


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich mpi4py)")
def test_distributed_run_mirrors_as_a_parent_with_one_child_per_rank(server, tmp_path):
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(ROOT / "examples" / "distributed_train.py"),
                           "--epochs", "1", "--samples", "256", "--experiment", "mirrored-ranks"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "YPROV4ML_MLFLOW_TRACKING_URI": server.uri})
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path / "prov", "mirrored-ranks")
    client = MlflowClient(server.uri)
    parent = mlflow_run_of(client, "mirrored-ranks", run_dir.name, "all")
    assert parent is not None and parent.info.status == "FINISHED"
    assert {f.path for f in client.list_artifacts(parent.info.run_id, "provenance")} == {"provenance/collection.json"}
    for rank in (0, 1):
        child = mlflow_run_of(client, "mirrored-ranks", run_dir.name, str(rank))
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        local = load_run(run_dir / f"prov.rank{rank}.json")
        for (key, context), data in local.metrics.items():
            history = client.get_metric_history(child.info.run_id, f"{context}/{key}")
            assert sorted(m.step for m in history) == sorted(data.steps), (rank, key)
    exported = cli("export", "mlflow", str(run_dir), "--tracking-uri", server.uri, "-q")
    assert exported.stdout.count("already there") == 3, exported.stdout  # parent and both ranks
    back = cli("import", "mlflow", "--tracking-uri", server.uri, "--run-id", parent.info.run_id, "-o",
               str(tmp_path / "in"))
    assert back.returncode == 0, back.stderr
    imported = sorted(Path(line) for line in back.stdout.split())
    assert [p.name for p in imported] == ["prov.rank0.json", "prov.rank1.json"] and imported[0].parent == imported[1].parent
    for rank, path in enumerate(imported):
        check_ranks = load_run(path), load_run(run_dir / f"prov.rank{rank}.json")
        assert check_ranks[0].params == check_ranks[1].params and check_ranks[0].rank == rank


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich mpi4py)")
def test_collected_run_exports_as_a_parent_with_one_child_per_rank(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(ROOT / "examples" / "distributed_train.py"),
                           "--epochs", "1", "--samples", "256", "--experiment", "ranks"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path / "prov", "ranks")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exported = cli("export", "mlflow", str(tmp_path / "prov"), "--tracking-uri", uri, "-q")
    assert exported.returncode == 0, exported.stderr
    client = MlflowClient(uri)
    parent = mlflow_run_of(client, "ranks", run_dir.name, "all")
    assert parent.data.params["world_size"] == "2"
    for rank in (0, 1):
        child = mlflow_run_of(client, "ranks", run_dir.name, str(rank))
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        local = load_run(run_dir / f"prov.rank{rank}.json")
        assert sum(len(d) for d in local.metrics.values()) == sum(
            len(client.get_metric_history(child.info.run_id, f"{c}/{k}")) for k, c in local.metrics)
    # the parent named: both ranks back into one directory, with the collection, each record as it was
    back = cli("import", "mlflow", "--tracking-uri", uri, "--run-id", parent.info.run_id, "-o", str(tmp_path / "in"))
    assert back.returncode == 0, back.stderr
    imported = tmp_path / "in" / "ranks" / run_dir.name
    for name in ("prov.rank0.json", "prov.rank1.json", "collection.json", "metrics.rank1.ymetric"):
        assert (imported / name).read_bytes() == (run_dir / name).read_bytes(), name
    assert [load_run(imported, rank=r).problems for r in (0, 1)] == [[], []]


def test_import_takes_a_foreign_or_tampered_run_without_trusting_its_tags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("../../outside")
    tags = {"yprov4ml.rank": "9" * 5000, "yprov4ml.world_size": "many", "yprov4ml.run_id": "../../escape",
            "yprov4ml.series.loss": "[1, 2]", "yprov4ml.param.lr": "{not json", "yprov4ml.param.batch": "{\"value\": 1}", "yprov4ml.series.acc": "{\"key\": 3}"}
    mlflow_id = client.create_run(exp, tags=tags).info.run_id
    client.log_param(mlflow_id, "lr", "0.1")
    client.log_param(mlflow_id, "batch", "32")
    client.log_metric(mlflow_id, "loss", 0.5, step=0)
    client.log_metric(mlflow_id, "acc", 0.7, step=0)
    client.set_terminated(mlflow_id)
    done = cli("import", "mlflow", "--tracking-uri", uri, "--run-id", mlflow_id, "-o", str(tmp_path / "in"))
    assert done.returncode == 0, done.stderr
    imported = Path(done.stdout.split()[0]).resolve()
    assert imported.is_relative_to((tmp_path / "in").resolve())  # names from the store stay inside -o
    view = load_run(imported)
    assert view.rank == 0 and view.params == {"lr": 0.1, "batch": 32} and view.problems == []
    assert sorted(view.metrics) == [("acc", "training"), ("loss", "training")]
    assert_valid_prov(imported)


def test_an_exported_record_is_imported_without_trusting_its_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prov_path = record(tmp_path / "prov")
    document = json.loads(prov_path.read_text())
    model = next(e for e in document["entity"].values() if "/model/" in json.dumps(e.get("prov:type")) or
                 e.get("prov:location", "").startswith("models/"))
    model["prov:location"] = "../../../escape.pt"  # a tampered record: its place leaves the run directory
    tampered = tmp_path / "upload" / "prov.rank0.json"
    tampered.parent.mkdir()
    tampered.write_text(json.dumps(document))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    mlflow_id = client.create_run(client.create_experiment("tampered")).info.run_id
    client.log_artifact(mlflow_id, str(tampered), "provenance")
    client.log_artifact(mlflow_id, str(prov_path.parent / "metrics.rank0.ymetric"))
    (tmp_path / "upload" / "other").mkdir()
    (tmp_path / "upload" / "other" / "prov.rank0.json").write_text('{"entity": {}}')  # not a record at all
    other = client.create_run(client.get_experiment_by_name("tampered").experiment_id).info.run_id
    client.log_artifact(other, str(tmp_path / "upload" / "other" / "prov.rank0.json"), "provenance")
    client.log_metric(other, "loss", 0.5, step=0)
    for run in (mlflow_id, other):
        client.set_terminated(run)
    done = cli("import", "mlflow", "--tracking-uri", uri, "--experiment", "tampered", "-o", str(tmp_path / "in"))
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("escape.pt"))
    assert "is not a yprov4ml record" in done.stderr and "rebuilt from MLflow's data" in done.stderr
    paths = [Path(line) for line in done.stdout.split()]
    kept = next(p for p in paths if json.loads(p.read_text()) == document)  # the record as it was sent
    assert load_run(kept).metric("loss").steps == list(range(2500))  # with the metric file it names
    # the journal and the logged file were not uploaded: named, and the rest imported
    assert "file(s) its record names" in done.stderr and "journal.rank0.jsonl" in done.stderr
    rebuilt = next(p for p in paths if p != kept)
    assert load_run(rebuilt).metric("loss").values == [0.5]


def test_mlflow_format_of_a_model_that_is_no_torch_module_is_refused_and_nothing_is_lost(tmp_path):
    yprov4ml.start_run("www.example.org", "flavour", tmp_path)
    checkpoint = tmp_path / "weights.bin"
    checkpoint.write_bytes(b"\0" * 16)
    yprov4ml.save_model_version(checkpoint, "kept")
    with pytest.raises(yprov4ml.errors.ArtifactError, match="torch.nn.Module.*leave mlflow_format out"):
        yprov4ml.save_model_version(checkpoint, "refused", mlflow_format=True)
    prov_path = yprov4ml.end_run()
    assert [m["model_name"] for m in load_run(prov_path).models] == ["kept"]
    assert "yprov:mlflow_model" not in prov_path.read_text()
