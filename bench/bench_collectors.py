"""Collector benchmark: log_system_metrics, log_carbon_metrics, and the background sampler's overhead.

    python bench/bench_collectors.py

Targets (issue 16): log_system_metrics <= 30 us per call, whole cost (process CPU, the writer included);
the first log_carbon_metrics never blocks training; end_run <= 15 ms at 1,000 points; sampler overhead on
the training loop <= 1 %.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, measure_calls, per_call_us  # noqa: E402


def system_metrics(calls: int = 4000) -> None:
    """log_system_metrics per call (median, and the process's whole CPU with the writer's work), against the
    sampling alone: psutil (the baseline) and /proc (what it uses)."""
    import yprov4ml
    from yprov4ml.collectors.procfs import ProcSampler, available
    from yprov4ml.collectors.system import SystemCollector

    with tempfile.TemporaryDirectory() as tmp:
        run = yprov4ml.start_run("www.example.org", "bench", tmp)
        yprov4ml.log_system_metrics(step=0)  # creates the series and the collectors
        time.sleep(0.5)  # the start's background work (source snapshot, package list) is done
        psutil_only = SystemCollector(run.run_dir)
        proc_only = ProcSampler(run.run_dir) if available() else psutil_only
        times: dict[str, list[float]] = {"psutil": [], "proc": []}
        for _ in range(calls // 100):  # alternating batches: the machine's drift hits each alike
            times["psutil"].append(per_call_us(lambda i: psutil_only.sample(), 100, 100))
            times["proc"].append(per_call_us(lambda i: proc_only.sample(), 100, 100))
        full = measure_calls(lambda i: yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, i + 1), calls, 100,
                             run._writer.drain)
        medians = {name: statistics.median(values) for name, values in times.items()}
        yprov4ml.end_run()
    print(f"log_system_metrics: {full['median_us']:.1f} us per call (median; 7 figures logged), whole cost "
          f"{full['wall_us']:.1f} us wall and {full['cpu_us']:.1f} us process CPU per call (the writer's work "
          f"included); sampling alone: /proc {medians['proc']:.1f} us, psutil {medians['psutil']:.1f} us "
          f"(ratio {medians['psutil'] / medians['proc']:.1f}x)")


def carbon_metrics(calls: int = 20) -> None:
    """The first log_carbon_metrics against a plain function call: codecarbon starts in the background."""
    import yprov4ml

    with tempfile.TemporaryDirectory() as tmp:
        run = yprov4ml.start_run("www.example.org", "bench", tmp)
        t0 = time.perf_counter()
        yprov4ml.log_carbon_metrics(step=0)
        first = time.perf_counter() - t0
        started = time.perf_counter()
        while ("energy_consumed_kwh", "training") not in run.record.metrics and time.perf_counter() - started < 30:
            time.sleep(0.01)
        up = time.perf_counter() - started
        later = []
        for i in range(1, calls):
            time.sleep(0.06)  # codecarbon re-measures only when its last reading is stale
            t0 = time.perf_counter()
            yprov4ml.log_carbon_metrics(step=i)
            later.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        yprov4ml.end_run()
        end = time.perf_counter() - t0
    print(f"log_carbon_metrics: first call returned in {first * 1e3:.2f} ms (codecarbon started in the background "
          f"and answered it {up:.2f} s later); later calls median {statistics.median(later) * 1e3:.2f} ms; "
          f"end_run with the tracker's stop {end:.3f} s")


def end_run_time(points: int = 1000, repeats: int = 7) -> None:
    """end_run of a run that logged ``points`` points, the moment they are logged (the start's background work
    still under way or not), in fresh processes: the first end_run of a process pays what a script pays."""
    code = ("import sys, time, tempfile, yprov4ml\n"
            "with tempfile.TemporaryDirectory() as tmp:\n"
            "    yprov4ml.start_run('www.example.org', 'bench', tmp)\n"
            f"    for i in range({points}): yprov4ml.log_metric('loss', 1.0 / (i + 1), step=i)\n"
            "    time.sleep(float(sys.argv[1]))\n"
            "    t0 = time.perf_counter(); yprov4ml.end_run(); print(time.perf_counter() - t0)\n")
    for pause in (0.0, 1.0):
        times = [float(subprocess.run([sys.executable, "-c", code, str(pause)], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(repeats)]
        print(f"end_run at {points} points, {pause:.0f} s after start_run: median {statistics.median(times) * 1e3:.1f} "
              f"ms (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}; {repeats} fresh processes)")


def loop(seconds_of_work: int, sampler: float | None, save_dir: str) -> tuple[float, float]:
    import torch

    import yprov4ml

    torch.manual_seed(0)
    x, y = torch.randn(4096, 32), torch.randn(4096, 1)
    model = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    optim = torch.optim.SGD(model.parameters(), lr=1e-2)
    yprov4ml.start_run("www.example.org", "sampler", save_dir, system_metrics_interval=sampler)
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(seconds_of_work):
        i = (step * 32) % 4096
        optim.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        optim.step()
        yprov4ml.log_metric("loss", loss.item(), yprov4ml.Context.TRAINING, step)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    yprov4ml.end_run()
    return wall, cpu


def sampler_overhead(repeats: int = 9, steps: int = 6000) -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        loop(500, None, tmp)
        ratios, cpu_ratios, plain, sampled = [], [], [], []
        for k in range(repeats):
            order = [None, 1.0] if k % 2 == 0 else [1.0, None]
            got = {s: loop(steps, s, tmp) for s in order}
            plain.append(got[None][0])
            sampled.append(got[1.0][0])
            ratios.append(got[1.0][0] / got[None][0])
            cpu_ratios.append(got[1.0][1] / got[None][1])
    print(f"background sampler at 1 s on a {statistics.median(plain):.2f} s training loop: overhead "
          f"{(statistics.median(ratios) - 1) * 100:.2f} % wall, {(statistics.median(cpu_ratios) - 1) * 100:.2f} % "
          f"CPU time (median of {repeats} paired runs; no sampler {statistics.median(plain):.3f} s, "
          f"sampler {statistics.median(sampled):.3f} s)")


if __name__ == "__main__":
    print(f"machine: {machine()}")
    system_metrics()
    carbon_metrics()
    end_run_time()
    sampler_overhead()
