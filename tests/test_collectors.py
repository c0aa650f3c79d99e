"""System, GPU (fake NVML), energy (real codecarbon, offline) metrics, the sampler, and no network."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.collectors.gpu import GpuCollector

from conftest import assert_valid_prov

SYSTEM_FIGURES = {"process_cpu_percent", "system_cpu_percent", "process_memory_rss_bytes",
                  "system_memory_used_bytes", "system_memory_percent", "disk_used_bytes", "disk_percent"}
ENERGY_FIGURES = {"emissions_kg", "energy_consumed_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh",
                  "cpu_power_w", "gpu_power_w", "ram_power_w"}


@pytest.fixture
def fake_gpus(monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    import fake_nvml

    fake_nvml.calls.clear()
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml)
    yield fake_nvml
    sys.path.remove(str(Path(__file__).parent))


def test_system_metrics_become_series_with_units(save_dir):
    with yprov4ml.start_run(experiment_name="sys", provenance_save_dir=save_dir) as run:
        for epoch in range(3):
            yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, epoch)
    doc = assert_valid_prov(run.prov_path)
    view = yprov4ml.load_run(run.run_dir)
    assert SYSTEM_FIGURES <= {k for k, _ in view.metrics}
    assert view.metric("process_memory_rss_bytes").values[0] > 10 * 2**20
    assert 0 <= view.metric("system_memory_percent").values[0] <= 100
    entity = doc["entity"]["run:rank-0/metric/training/process_memory_rss_bytes"]
    assert entity["yprov:unit"] == "B"
    assert view.metric("disk_percent").steps == [0, 1, 2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_the_proc_sampler_gives_psutils_figures(tmp_path):
    """The /proc reader that log_system_metrics uses on Linux agrees with psutil, figure by figure."""
    from yprov4ml.collectors import procfs
    from yprov4ml.collectors.system import SystemCollector, system_collector

    wall, cpu = time.perf_counter(), time.process_time()
    fast, reference = procfs.ProcSampler(tmp_path), SystemCollector(tmp_path)
    assert isinstance(system_collector(tmp_path), procfs.ProcSampler)
    started = time.process_time()
    while time.process_time() - started < 0.3:  # some CPU time for the process figure to measure
        sum(range(10_000))
    ours, theirs = dict((n, v) for n, v, _ in fast.sample()), dict((n, v) for n, v, _ in reference.sample())
    # what this process really used over the interval, from its own clocks: on a busy machine the loop gets
    # less of the wall time, and the figure must say so, not a fixed share
    used = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
    assert set(ours) == set(theirs) == SYSTEM_FIGURES
    assert ours["process_cpu_percent"] == pytest.approx(theirs["process_cpu_percent"], abs=10)
    assert ours["process_cpu_percent"] == pytest.approx(used, abs=15) and used > 0
    assert ours["system_cpu_percent"] == pytest.approx(theirs["system_cpu_percent"], abs=25)
    for name in ("process_memory_rss_bytes", "system_memory_used_bytes", "disk_used_bytes"):
        assert ours[name] == pytest.approx(theirs[name], rel=0.05), name
    for name in ("system_memory_percent", "disk_percent"):
        assert ours[name] == pytest.approx(theirs[name], abs=1.0), name
    fast.close()


def test_gpu_figures_through_nvml(save_dir, fake_gpus):
    with yprov4ml.start_run(experiment_name="gpu", provenance_save_dir=save_dir) as run:
        yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, 0)
        yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, 1)
    assert_valid_prov(run.prov_path)
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("gpu0_memory_used_bytes").values == [2.0**30, 2.0**30]
    assert view.metric("gpu1_memory_total_bytes").values[0] == 80 * 2.0**30
    assert view.metric("gpu0_utilization_percent").values[0] == 50.0
    assert view.metric("gpu1_power_w").values[0] == 250.001
    assert view.metric("gpu1_temperature_c").values[0] == 61.0
    assert view.metric("gpu0_energy_j").values == [1234.567, 1234.567]
    assert ("gpu1_energy_j", "training") not in view.metrics  # the driver lacks it: absent, not zero
    assert fake_gpus.calls.count("energy1") == 1  # an unsupported figure is not asked for again
    assert "gpu0 NVIDIA Fake H100" in json.loads(view.environment["accelerators"])


def test_no_gpu_means_one_info_line_and_no_failure(save_dir, monkeypatch, caplog):
    class NoDriver:
        @staticmethod
        def nvmlInit():
            raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", NoDriver)
    with caplog.at_level(logging.INFO, logger="yprov4ml"):
        with yprov4ml.start_run(experiment_name="nogpu", provenance_save_dir=save_dir) as run:
            yprov4ml.log_system_metrics(step=0)
            yprov4ml.log_system_metrics(step=1)
    lines = [r.getMessage() for r in caplog.records if "GPU" in r.getMessage()]
    assert len(lines) == 1 and "NVML is not available" in lines[0]
    names = {k for k, _ in yprov4ml.load_run(run.run_dir).metrics}
    assert SYSTEM_FIGURES <= names and not any(n.startswith("gpu") for n in names)


def test_gpu_collector_is_none_without_nvidia_ml_py(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert GpuCollector.create() is None


def test_carbon_metrics_from_the_offline_tracker(save_dir):
    with yprov4ml.start_run(experiment_name="carbon", provenance_save_dir=save_dir, energy_country="ITA",
                            track_energy=True) as run:
        deadline = time.monotonic() + 30
        while not run._collector("energy").ready and time.monotonic() < deadline:  # started with the run
            time.sleep(0.1)
        for epoch in range(2):
            time.sleep(0.3)
            yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, epoch)
    doc = assert_valid_prov(run.prov_path)
    view = yprov4ml.load_run(run.run_dir)
    assert ENERGY_FIGURES <= {k for k, _ in view.metrics}
    energy = view.metric("energy_consumed_kwh").values
    assert energy[1] >= energy[0] > 0  # cumulative
    assert view.run["energy_country"] == "ITA"
    assert view.run["total_energy_consumed_kwh"] >= energy[1]
    assert view.run["total_emissions_kg"] > 0
    assert "yprov:energy_unavailable" not in doc["activity"]["run:rank-0"]


def test_carbon_calls_never_wait_and_are_answered_once_codecarbon_is_up(save_dir):
    with yprov4ml.start_run(experiment_name="lazy", provenance_save_dir=save_dir) as run:
        started = time.perf_counter()
        yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, 7)  # starts codecarbon, in the background
        yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, 8)  # while it starts: kept, answered later
        waited = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while ("energy_consumed_kwh", "training") not in run.record.metrics and time.monotonic() < deadline:
            time.sleep(0.1)
        yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, 9)  # up: measured at once
    assert waited < 0.5  # codecarbon takes about 1.5 s to start; the training thread did not wait for it
    assert yprov4ml.load_run(run.run_dir).metric("energy_consumed_kwh").steps == [7, 8, 9]


def test_missing_codecarbon_is_recorded_and_the_run_goes_on(save_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with yprov4ml.start_run(experiment_name="nocc", provenance_save_dir=save_dir) as run:
        yprov4ml.log_carbon_metrics(step=0)
        yprov4ml.log_metric("loss", 1.0)
    view = yprov4ml.load_run(run.run_dir)
    assert view.status == "FINISHED"
    assert "codecarbon is not installed" in view.run["energy_unavailable"]
    assert view.metric("loss").values == [1.0]


def test_a_raising_collector_never_breaks_training(save_dir, monkeypatch):
    from yprov4ml.collectors import system

    def broken(self):
        raise OSError("psutil exploded")

    from yprov4ml.collectors import procfs

    monkeypatch.setattr(system.SystemCollector, "sample", broken)
    monkeypatch.setattr(procfs.ProcSampler, "sample", broken)
    with yprov4ml.start_run(experiment_name="broken", provenance_save_dir=save_dir) as run:
        with pytest.warns(RuntimeWarning, match="psutil exploded"):
            yprov4ml.log_system_metrics(step=0)
        yprov4ml.log_system_metrics(step=1)  # warned once; still no exception
        yprov4ml.log_metric("loss", 1.0)
    assert yprov4ml.load_run(run.run_dir).status == "FINISHED"


def test_only_local_rank_zero_measures_energy(save_dir, monkeypatch):
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    with yprov4ml.start_run(experiment_name="node", provenance_save_dir=save_dir, collect_all_processes=True,
                            collection_timeout_s=0.1) as run:
        yprov4ml.log_carbon_metrics(step=0)
    view = yprov4ml.load_run(run.run_dir, rank=1)
    assert not any(k in ENERGY_FIGURES for k, _ in view.metrics)
    assert view.run["energy_measured_by"] == "local rank 0 of this node"


def test_background_sampler_samples_and_stops(save_dir):
    import threading

    run = yprov4ml.start_run(experiment_name="sampler", provenance_save_dir=save_dir, system_metrics_interval=0.1)
    time.sleep(0.75)
    yprov4ml.end_run()
    assert not [t for t in threading.enumerate() if t.name == "yprov4ml-system-sampler"]
    view = yprov4ml.load_run(run.run_dir)
    samples = view.metric("process_cpu_percent", "system")
    assert len(samples) >= 3
    assert samples.steps == list(range(len(samples)))
    assert_valid_prov(run.prov_path)


def test_bad_sampler_interval(save_dir):
    with pytest.raises(ValueError, match="system_metrics_interval"):
        yprov4ml.start_run(provenance_save_dir=save_dir, system_metrics_interval=0)
    assert yprov4ml.active_run() is None


def test_execution_timers(save_dir):
    with yprov4ml.start_run(experiment_name="timers", provenance_save_dir=save_dir) as run:
        yprov4ml.log_execution_start_time("epoch")
        time.sleep(0.05)
        elapsed = yprov4ml.log_execution_end_time("epoch", yprov4ml.Context.TRAINING, 0)
        yprov4ml.log_current_execution_time("since_start", yprov4ml.Context.TRAINING, 0)
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("epoch_time_s").values == [elapsed] and elapsed >= 0.05
    assert view.metric("since_start").values[0] >= elapsed
    assert view.run["wall_time_s"] >= elapsed
    ctx = json.loads(run.prov_path.read_text())["activity"]["run:rank-0/context/training"]
    assert float(ctx["yprov:duration_s"]["$"]) >= 0


NO_NETWORK = textwrap.dedent("""
    import sys, time
    attempts = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
            attempts.append((event, repr(args)[:200]))
    sys.addaudithook(audit)
    import yprov4ml
    with yprov4ml.start_run("www.example.org", "offline", sys.argv[1], system_metrics_interval=0.2) as run:
        for epoch in range(2):
            yprov4ml.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
            yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, epoch)
            yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, epoch)
            time.sleep(0.3)
    yprov4ml.load_run(run.run_dir)
    print("NETWORK", attempts)
    sys.exit(1 if attempts else 0)
""")


def test_a_whole_run_makes_no_network_call(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, str(tmp_path / "prov")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NETWORK []" in done.stdout
    (run_dir,) = (tmp_path / "prov" / "offline").iterdir()
    view = yprov4ml.load_run(run_dir)
    assert ENERGY_FIGURES <= {k for k, _ in view.metrics}
    assert ("process_cpu_percent", "system") in view.metrics


def test_the_network_audit_sees_a_lookup(tmp_path):
    """Control for the test above: the audit hook does catch a name lookup."""
    probe = NO_NETWORK.replace("import yprov4ml\n", "import yprov4ml, socket\nsocket.getaddrinfo('localhost', 80)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "prov")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "socket.getaddrinfo" in done.stdout
