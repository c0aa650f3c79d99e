"""Names that collide, rejected calls that must leave nothing, damaged files that must be reported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import types
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yprov4ml
from yprov4ml.errors import InvalidMetricError, ParamConflictError, YProvError
from yprov4ml.prov.decode import attributes
from yprov4ml.prov.reader import DamagedRunWarning
from yprov4ml.storage.names import MAX_READABLE, UniqueNames, safe_name

from conftest import assert_valid_prov


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          timeout=120)


@given(st.lists(st.text(min_size=1, max_size=80), min_size=2, max_size=8, unique=True))
def test_derived_names_are_distinct_bounded_and_safe(keys):
    names = [safe_name(k) for k in keys]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= MAX_READABLE + 41 and name and not name.startswith(("-", "."))
        assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    minted = UniqueNames()
    assert len({minted.name(k) for k in keys}) == len(keys)
    assert [minted.name(k) for k in keys] == [minted.name(k) for k in keys]  # minted once, then the same


KEYS = st.lists(st.one_of(st.text(min_size=1, max_size=40), st.sampled_from(["a b", "a_b-7dbde935", "x" * 300])),
                min_size=1, max_size=5, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=KEYS)
def test_any_keys_round_trip_as_metrics_and_params(tmp_path, keys):
    run = yprov4ml.start_run("www.example.org", "names", tmp_path / "prov")
    for n, key in enumerate(keys):
        yprov4ml.log_metric(key, float(n), yprov4ml.Context.TRAINING, step=n)
        yprov4ml.log_param(key, n)
    path = yprov4ml.end_run()
    assert_valid_prov(path)
    view = yprov4ml.load_run(run.run_dir)
    from yprov4ml.capture.secrets import REDACTED, is_secret_name

    # a key that names a secret ("TOKEN", "db_password") keeps its name and hides its value, by design
    assert view.params == {key: REDACTED if is_secret_name(key) else n for n, key in enumerate(keys)}
    assert {k: m.values for (k, _), m in view.metrics.items()} == {key: [float(n)] for n, key in enumerate(keys)}
    assert not view.problems


def test_colliding_and_long_keys_keep_their_own_series(save_dir):
    long_key = "k" * 300
    with yprov4ml.start_run(experiment_name="collide", provenance_save_dir=save_dir) as run:
        yprov4ml.log_metric("a b", 1.0)
        yprov4ml.log_metric("a_b-7dbde935", 2.0)
        yprov4ml.log_metric(long_key, 3.0)
    assert cli("validate", str(run.prov_path)).returncode == 0
    view = yprov4ml.load_run(run.run_dir)
    assert {k: m.values for (k, _), m in view.metrics.items()} == {"a b": [1.0], "a_b-7dbde935": [2.0],
                                                                    long_key: [3.0]}
    assert cli("show", str(run.run_dir)).returncode == 0


def test_a_rejected_metric_records_nothing(save_dir):
    with yprov4ml.start_run(experiment_name="rejected", provenance_save_dir=save_dir) as run:
        with pytest.raises(InvalidMetricError):
            yprov4ml.log_metric("bad_value", "not a number")
        with pytest.raises(InvalidMetricError):
            yprov4ml.log_metric("bad_step", 1.0, step="seven")
        with pytest.raises(InvalidMetricError):
            yprov4ml.log_metric("bad_time", 1.0, timestamp=float("nan"))  # (a string there is the source)
        with pytest.raises(InvalidMetricError):
            yprov4ml.log_metrics({"fine": 1.0, "bad": object()})
    view = yprov4ml.load_run(run.run_dir)
    assert view.metrics == {}
    assert not (run.run_dir / "metrics.rank0.ymetric").exists()


def test_show_handles_a_series_with_no_point(tmp_path):
    # A run killed before its first flush leaves an opened but empty series; recovered, it must still show.
    script = ("import os, yprov4ml; yprov4ml.start_run('x.org', 'empty', r'%s', flush_interval_s=60); "
              "yprov4ml.log_metric('loss', 1.0); os._exit(9)") % (tmp_path / "prov")
    subprocess.run([sys.executable, "-c", script], timeout=60)
    assert cli("recover", str(tmp_path / "prov")).returncode == 0
    run_dir = next((tmp_path / "prov" / "empty").iterdir())
    shown = cli("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "loss@training" in shown.stdout and "KILLED" in shown.stdout


def test_param_values_that_raise_and_partial_batches_record_nothing(save_dir):
    class Hostile:
        def __str__(self):
            raise RuntimeError("no text for you")

    with yprov4ml.start_run(experiment_name="params", provenance_save_dir=save_dir) as run:
        with pytest.raises(ParamConflictError, match="cannot be turned into text"):
            yprov4ml.log_param("hostile", Hostile())
        with pytest.raises(ParamConflictError, match="non-empty string"):
            yprov4ml.log_params({"a": 1, 3: 2})
        yprov4ml.log_param("b", 2)
        with pytest.raises(ParamConflictError, match="none of these parameters were recorded"):
            yprov4ml.log_params({"c": 3, "b": 5})
    assert yprov4ml.load_run(run.run_dir).params == {"b": 2}


def test_the_first_cpu_figure_covers_the_time_since_start_run(save_dir):
    with yprov4ml.start_run(experiment_name="cpu", provenance_save_dir=save_dir) as run:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        yprov4ml.log_system_metrics()
    assert yprov4ml.load_run(run.run_dir).metric("process_cpu_percent").values[0] > 10.0


def test_a_damaged_chunk_is_skipped_and_reported(save_dir):
    with yprov4ml.start_run(experiment_name="damaged", provenance_save_dir=save_dir, save_after_n_logs=10) as run:
        for step in range(30):
            yprov4ml.log_metric("loss", float(step), step=step)
            if step % 10 == 9:
                run._writer.drain()  # three chunks of ten
    metric_file = run.run_dir / "metrics.rank0.ymetric"
    data = bytearray(metric_file.read_bytes())
    first_chunk = data.index(b"YPMC")
    data[first_chunk + 20: first_chunk + 28] = b"\xff" * 8  # a bad block inside the first chunk
    metric_file.write_bytes(bytes(data))
    with pytest.warns(DamagedRunWarning, match=r"20 point\(s\) read"):
        view = yprov4ml.load_run(run.run_dir)
    assert view.metric("loss").steps == list(range(10, 30))  # resynchronised on the next chunk
    assert any("20 point(s) read, the document records 30" in p for p in view.problems)
    shown = cli("show", str(run.run_dir))
    assert shown.returncode == 0 and "WARNING" in shown.stdout and "damaged" in shown.stdout
    checked = cli("validate", str(run.prov_path))
    assert checked.returncode == 1 and "the document records 30" in checked.stderr


def test_invalid_start_options_leave_no_thread_and_no_journal(save_dir):
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError, match="system_metrics_interval"):
        yprov4ml.start_run(experiment_name="bad", provenance_save_dir=save_dir, system_metrics_interval=0)
    with pytest.raises(ValueError, match="flush_interval_s"):
        yprov4ml.start_run(experiment_name="bad", provenance_save_dir=save_dir, flush_interval_s=-1)
    assert not save_dir.exists()
    assert {t.name for t in threading.enumerate()} - before == set()
    assert yprov4ml.active_run() is None


def test_a_broken_torch_distributed_is_an_error_not_one_rank(save_dir, monkeypatch):
    def broken():
        raise RuntimeError("the process group is gone")

    fake = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True, get_rank=broken,
                                 get_world_size=broken)
    monkeypatch.setitem(sys.modules, "torch.distributed", fake)
    with pytest.raises(YProvError, match="the process group is gone"):
        yprov4ml.start_run(experiment_name="td", provenance_save_dir=save_dir)


def test_energy_figures_codecarbon_lacks_are_absent_not_zero(monkeypatch):
    codecarbon = pytest.importorskip("codecarbon")
    from yprov4ml.collectors.energy import EnergyTracker

    class Tracker:  # codecarbon's tracker as it behaves on a machine without a GPU power reading
        def __init__(self, output_handlers, **_):
            self.handlers = output_handlers

        def start(self):
            pass

        def flush(self):
            data = types.SimpleNamespace(emissions=1e-6, energy_consumed=2e-6, cpu_energy=1e-6, gpu_energy=None,
                                         ram_energy=1e-6, cpu_power=12.5, gpu_power=None, ram_power=3.0)
            for handler in self.handlers:
                handler.out(data, data)

        def stop(self):
            raise RuntimeError("stuck")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Tracker)
    tracker = EnergyTracker("FRA")
    assert tracker.wait_started()
    figures = {name: value for name, value, _ in tracker.measure()}
    assert figures["cpu_power_w"] == 12.5 and "gpu_power_w" not in figures and "gpu_energy_kwh" not in figures
    tracker.stop()  # logged, not raised, not swallowed silently


def test_lightning_logger_warns_when_a_hyperparameter_changes(tmp_path):
    pytest.importorskip("lightning")
    from yprov4ml.integrations.lightning import YProv4MLLogger

    logger = YProv4MLLogger(provenance_save_dir=str(tmp_path / "prov"), experiment_name="hp")
    logger.log_hyperparams({"lr": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logger.log_hyperparams({"lr": 0.1})  # the same value again (a resumed fit): silent
    with pytest.warns(RuntimeWarning, match="'lr' was already logged as 0.1"):
        logger.log_hyperparams({"lr": 0.5})
    logger.end()


def test_run_end_called_directly_releases_the_process(save_dir):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    run = yprov4ml.start_run(experiment_name="direct", provenance_save_dir=save_dir)
    assert signal.getsignal(signal.SIGTERM) is not before
    run.end()
    assert yprov4ml.active_run() is None and signal.getsignal(signal.SIGTERM) is before
    yprov4ml.start_run(experiment_name="direct", provenance_save_dir=save_dir)  # no RunAlreadyActiveError
    yprov4ml.end_run()


@pytest.mark.parametrize("kwargs,message", [
    ({"rank": 1, "collect_all_processes": True}, "needs world_size="),
    ({"rank": 2, "world_size": 2}, "does not exist in a world of 2"),
    ({"rank": 0, "world_size": 0}, "world_size must be a positive integer"),
])
def test_explicit_ranks_are_checked(save_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        yprov4ml.start_run(experiment_name="ranks", provenance_save_dir=save_dir, **kwargs)
    assert not save_dir.exists()


def test_explicit_ranks_without_a_launcher_collect_without_waiting_for_nobody(tmp_path):
    script = ("import sys, yprov4ml; r = int(sys.argv[1]); "
              "yprov4ml.start_run('x.org', 'pair', sys.argv[2], collect_all_processes=True, rank=r, world_size=2, "
              "run_id='pair-1', collection_timeout_s=30); yprov4ml.log_metric('loss', r); yprov4ml.end_run()")
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(r), str(tmp_path / "prov")],
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for proc in procs:
        assert proc.wait(timeout=90) == 0, proc.stderr.read()
    assert time.monotonic() - started < 30  # neither waited out a timeout
    collection = json.loads((tmp_path / "prov/pair/pair-1/collection.json").read_text())
    job = attributes(collection["activity"]["run:distributed"])
    assert job["ranks_recorded"] == 2 and job["status"] == "FINISHED"


def test_explicit_ranks_under_a_one_process_mpi_world_need_a_shared_run_id(tmp_path):
    pytest.importorskip("mpi4py")
    script = ("import yprov4ml; from mpi4py import MPI; "
              "yprov4ml.start_run('x.org', 'lonely', r'%s', collect_all_processes=True, rank=1, world_size=2)"
              ) % (tmp_path / "prov")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "cannot agree on a run id" in done.stderr
    assert "run_id=" in done.stderr


def test_without_torch_saving_a_model_names_the_extra_to_install(tmp_path):
    script = ("import sys; sys.modules['torch'] = None\n"
              "import yprov4ml\n"
              "class Net:\n    def state_dict(self): return {}\n"
              "with yprov4ml.start_run('x.org', 'notorch', sys.argv[1]):\n"
              "    try:\n        yprov4ml.save_model_version(Net(), 'net')\n"
              "    except yprov4ml.YProvError as exc:\n        print(type(exc).__name__, exc)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "MissingDependencyError" in done.stdout and "pip install 'yprov4ml[torch]'" in done.stdout


def test_without_codecarbon_log_carbon_metrics_says_so_once(save_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with yprov4ml.start_run(experiment_name="nocc", provenance_save_dir=save_dir):
        with pytest.warns(RuntimeWarning, match="codecarbon is not installed"):
            yprov4ml.log_carbon_metrics()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yprov4ml.log_carbon_metrics()  # once is enough


def test_a_checkpoint_path_is_described_as_a_checkpoint(save_dir, tmp_path):
    checkpoint = tmp_path / "epoch3.ckpt"
    checkpoint.write_bytes(b"weights")
    with yprov4ml.start_run(experiment_name="ckpt", provenance_save_dir=save_dir) as run:
        yprov4ml.save_model_version(str(checkpoint), "net", step=3)
    (model,) = yprov4ml.load_run(run.run_dir).models
    assert model["model_class"] == "checkpoint file" and model["checkpoint_format"] == "ckpt" and model["step"] == 3


def test_identities_are_kept_as_they_are_while_keys_are_kept_apart(save_dir):
    from yprov4ml.storage.names import safe_part

    run = yprov4ml.start_run("www.example.org", "ids", save_dir, run_id="exp-1a2b3c4d", user="alice-0badcafe")
    yprov4ml.log_metric("a_b-7dbde935", 1.0)
    path = yprov4ml.end_run()
    doc = json.loads(path.read_text())
    assert run.run_dir.name == "exp-1a2b3c4d"  # a run id chosen by the user names its directory, unchanged
    assert doc["prefix"]["run"].endswith("/run/exp-1a2b3c4d/")
    assert "user:alice-0badcafe" in doc["agent"]
    generated = yprov4ml.start_run("www.example.org", "ids", save_dir)
    yprov4ml.end_run()
    assert json.loads(generated.prov_path.read_text())["prefix"]["run"].endswith(f"/run/{generated.run_id}/")
    assert safe_part("a b/../x") != "a b/../x" and "/" not in safe_part("a b/../x")
