"""Every misuse of the core API: a clear error naming the fix, and the record intact afterwards."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type
from yprov4ml import errors

from conftest import assert_valid_prov


def test_directives_before_start_run_name_the_fix():
    calls = [
        lambda: yprov4ml.log_metric("loss", 1.0),
        lambda: yprov4ml.log_metrics({"loss": 1.0}),
        lambda: yprov4ml.log_param("lr", 1),
        lambda: yprov4ml.log_params({"lr": 1}),
        lambda: yprov4ml.log_artifact("x"),
        lambda: yprov4ml.save_model_version(object(), "m"),
        lambda: yprov4ml.log_model(object(), "m"),
        lambda: yprov4ml.log_dataset([1, 2], "d"),
        lambda: yprov4ml.log_current_execution_time("t"),
        lambda: yprov4ml.log_system_metrics(),
        lambda: yprov4ml.log_carbon_metrics(),
        lambda: yprov4ml.end_run(),
    ]
    for call in calls:
        with pytest.raises(yprov4ml.RunNotActiveError, match=r"start_run"):
            call()


def test_run_object_refuses_directives_after_end(save_dir):
    run = yprov4ml.start_run(experiment_name="after", provenance_save_dir=save_dir)
    yprov4ml.log_metric("loss", 1.0)
    yprov4ml.end_run()
    before = run.prov_path.read_bytes()
    for call in (lambda: run.log_metric("loss", 2.0), lambda: run.log_param("a", 1), lambda: run.end()):
        with pytest.raises(yprov4ml.RunNotActiveError, match="has ended"):
            call()
    with pytest.raises(yprov4ml.RunNotActiveError):
        yprov4ml.log_metric("loss", 2.0)
    assert run.prov_path.read_bytes() == before


def _started(save_dir: Path, name: str):
    run = yprov4ml.start_run(experiment_name=name, provenance_save_dir=save_dir)
    yprov4ml.log_param("kept", 1)
    yprov4ml.log_metric("kept", 1.0, step=0)
    return run


CASES = [
    # (name, call, exception, message pattern)
    ("start while active", lambda tmp: yprov4ml.start_run(provenance_save_dir=tmp), errors.RunAlreadyActiveError,
     "end_run"),
    ("param conflict", lambda tmp: yprov4ml.log_param("kept", 2), errors.ParamConflictError, "logged once"),
    ("params batch conflict", lambda tmp: yprov4ml.log_params({"new": 1, "kept": 3}), errors.ParamConflictError,
     "none of these"),
    ("param key not a string", lambda tmp: yprov4ml.log_param(3, 1), errors.ParamConflictError, "string"),
    ("metric value a string", lambda tmp: yprov4ml.log_metric("kept", "0.5"), errors.InvalidMetricError,
     "not a number"),
    ("metric value None", lambda tmp: yprov4ml.log_metric("kept", None), errors.InvalidMetricError, "not a number"),
    ("metric value a list of text", lambda tmp: yprov4ml.log_metric("kept", [1.0, "x"]), errors.InvalidMetricError,
     "not a number"),
    ("metric value a ragged list", lambda tmp: yprov4ml.log_metric("kept", [[1.0], [2.0, 3.0]]),
     errors.InvalidMetricError, "rectangular"),
    ("a vector where numbers were logged", lambda tmp: yprov4ml.log_metric("kept", [1.0, 2.0]),
     errors.InvalidMetricError, "holds numbers.*another key"),
    ("metric key unhashable", lambda tmp: yprov4ml.log_metric(["k"], 1.0), errors.InvalidMetricError, "string"),
    ("metric key not a string", lambda tmp: yprov4ml.log_metric(7, 1.0), errors.InvalidMetricError, "string"),
    ("metric key empty", lambda tmp: yprov4ml.log_metric("", 1.0), errors.InvalidMetricError, "non-empty"),
    ("step a float", lambda tmp: yprov4ml.log_metric("kept", 1.0, step=1.5), errors.InvalidMetricError, "integer"),
    ("step too big", lambda tmp: yprov4ml.log_metric("kept", 1.0, step=2**70), errors.InvalidMetricError, "64 bits"),
    # (a string in that place is upstream's fifth argument, the source: never a timestamp)
    ("bad timestamp", lambda tmp: yprov4ml.log_metric("kept", 1.0, timestamp=float("inf")), errors.InvalidMetricError,
     "timestamp"),
    ("bad context", lambda tmp: yprov4ml.log_metric("kept", 1.0, context=3.5), TypeError, "Context"),
    ("bad context name", lambda tmp: yprov4ml.log_metric("kept", 1.0, context="a b"), ValueError, "context name"),
    ("metrics not a dict", lambda tmp: yprov4ml.log_metrics([("a", 1.0)]), errors.InvalidMetricError, "dict"),
    ("missing artifact", lambda tmp: yprov4ml.log_artifact(tmp / "nope.txt"), errors.ArtifactError, "does not exist"),
    ("artifact escapes", lambda tmp: yprov4ml.log_artifact(_file(tmp), name="../../evil.txt"), errors.ArtifactError,
     "escape the run directory"),
    ("artifact absolute name", lambda tmp: yprov4ml.log_artifact(_file(tmp), name="/etc/evil"),
     errors.ArtifactError, "escape the run directory"),
    ("model not saveable", lambda tmp: yprov4ml.save_model_version(object(), "m"), errors.ArtifactError,
     "torch.nn.Module"),
    ("model path missing", lambda tmp: yprov4ml.save_model_version(str(tmp / "none.pt"), "m"), errors.ArtifactError,
     "does not exist"),
    ("end timer never started", lambda tmp: yprov4ml.log_execution_end_time("x"), errors.RunNotActiveError,
     "log_execution_start_time"),
]


def _file(tmp: Path) -> Path:
    path = tmp / "real.txt"
    path.write_text("x")
    return path


@pytest.mark.parametrize("name,call,exception,pattern", CASES, ids=[c[0] for c in CASES])
def test_misuse_gives_a_clear_error_and_keeps_the_record(tmp_path, name, call, exception, pattern):
    save_dir = tmp_path / "prov"
    run = _started(save_dir, "bad")
    with pytest.raises(exception, match=pattern):
        call(tmp_path)
    assert yprov4ml.active_run() is run  # the run survives the bad call
    yprov4ml.log_metric("kept", 2.0, step=1)
    path = yprov4ml.end_run()
    assert_valid_prov(path)
    view = yprov4ml.load_run(run.run_dir)
    assert view.params["kept"] == 1
    assert view.metric("kept").values == [1.0, 2.0]
    assert not list(run.run_dir.rglob("*evil*"))
    assert not list(tmp_path.rglob("evil*"))


def test_same_param_twice_with_same_value_is_accepted(save_dir):
    with yprov4ml.start_run(experiment_name="same", provenance_save_dir=save_dir) as run:
        yprov4ml.log_param("lr", 0.1)
        yprov4ml.log_param("lr", 0.1)
        yprov4ml.log_param("nan", float("nan"))
        yprov4ml.log_param("nan", float("nan"))
    assert yprov4ml.load_run(run.run_dir).params["lr"] == 0.1


def test_unwritable_save_dir_fails_at_start_run(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(yprov4ml.ProvenanceDirError, match="provenance_save_dir"):
        yprov4ml.start_run(experiment_name="x", provenance_save_dir=blocker / "prov")
    assert yprov4ml.active_run() is None
    with yprov4ml.start_run(experiment_name="x", provenance_save_dir=tmp_path / "ok"):
        pass  # the failed start left nothing behind that blocks the next one


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc/sys").exists(), reason="needs a read-only file system")
def test_read_only_file_system_fails_at_start_run():
    with pytest.raises(yprov4ml.ProvenanceDirError, match="cannot write provenance"):
        yprov4ml.start_run(experiment_name="x", provenance_save_dir="/proc/sys/yprov4ml")


def test_bad_save_after_n_logs(save_dir):
    with pytest.raises(ValueError, match="save_after_n_logs"):
        yprov4ml.start_run(provenance_save_dir=save_dir, save_after_n_logs=0)
    assert yprov4ml.active_run() is None


def test_artifact_with_the_same_name_twice_keeps_both(save_dir, tmp_path):
    source = tmp_path / "plot.png"
    with yprov4ml.start_run(experiment_name="twice", provenance_save_dir=save_dir) as run:
        source.write_bytes(b"epoch 1")
        yprov4ml.log_artifact(source, step=1)
        source.write_bytes(b"epoch 2")
        yprov4ml.log_artifact(source, step=2)
    stored = sorted(a["prov:location"] for a in yprov4ml.load_run(run.run_dir).artifacts)
    assert stored == ["artifacts/rank0/plot-2.png", "artifacts/rank0/plot.png"]
    assert (run.run_dir / stored[0]).read_bytes() == b"epoch 2"
    doc = assert_valid_prov(run.prov_path)
    assert len([e for e in doc["entity"].values() if prov_type(e) == "yprov:Artifact"]) == 2


def test_prov_json_is_replaced_atomically(save_dir, monkeypatch):
    """A crash while writing the document leaves no partial file behind."""
    from yprov4ml.storage import files

    run = yprov4ml.start_run(experiment_name="atomic", provenance_save_dir=save_dir)
    yprov4ml.log_metric("loss", 1.0)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        yprov4ml.end_run()
    assert not run.prov_path.exists()
    assert not [p for p in run.run_dir.iterdir() if p.name.endswith(".tmp")]
    events = [json.loads(line)["event"] for line in (run.run_dir / "journal.rank0.jsonl").read_text().splitlines()]
    assert "metric" in events  # the journal still holds what was recorded


def test_concurrent_params_from_threads(save_dir):
    with yprov4ml.start_run(experiment_name="tp", provenance_save_dir=save_dir) as run:
        threads = [threading.Thread(target=yprov4ml.log_param, args=(f"p{i}", i)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert yprov4ml.load_run(run.run_dir).params == {f"p{i}": i for i in range(50)}
