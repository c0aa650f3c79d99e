"""Collector benchmark: log_system_metrics, log_carbon_metrics, and the background sampler's overhead.

    python bench/bench_collectors.py

Targets: log_system_metrics <= 30 us per call without GPU (issue 16; 300 us in issue 3);
sampler overhead on the training loop <= 1 %.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import per_call_us  # noqa: E402


def system_metrics(calls: int = 2000) -> None:
    """log_system_metrics per call, and the sampling alone: psutil (the baseline) and /proc (what it uses)."""
    import yprov4ml
    from yprov4ml.collectors.procfs import ProcSampler, available
    from yprov4ml.collectors.system import SystemCollector

    with tempfile.TemporaryDirectory() as tmp:
        run = yprov4ml.start_run("www.example.org", "bench", tmp)
        yprov4ml.log_system_metrics(step=0)  # creates the series and the collectors
        psutil_only = SystemCollector(run.run_dir)
        proc_only = ProcSampler(run.run_dir) if available() else psutil_only
        times: dict[str, list[float]] = {"psutil": [], "proc": [], "full": []}
        cpu0 = time.process_time()
        for k in range(calls // 100):  # alternating batches: the machine's drift hits each alike
            times["psutil"].append(per_call_us(lambda i: psutil_only.sample(), 100, 100))
            times["proc"].append(per_call_us(lambda i: proc_only.sample(), 100, 100))
            times["full"].append(per_call_us(lambda i: yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING,
                                                                                  k * 100 + i), 100, 100))
        cpu_per_call = (time.process_time() - cpu0) / (3 * calls) * 1e6
        medians = {name: statistics.median(values) for name, values in times.items()}
        yprov4ml.end_run()
    print(f"log_system_metrics: {medians['full']:.1f} us per call (median; 7 figures logged), "
          f"sampling alone: /proc {medians['proc']:.1f} us, psutil {medians['psutil']:.1f} us "
          f"(ratio {medians['psutil'] / medians['proc']:.1f}x); process CPU {cpu_per_call:.1f} us per call "
          "averaged over the three")


def carbon_metrics(calls: int = 20) -> None:
    import yprov4ml

    with tempfile.TemporaryDirectory() as tmp:
        yprov4ml.start_run("www.example.org", "bench", tmp)
        t0 = time.perf_counter()
        yprov4ml.log_carbon_metrics(step=0)
        first = time.perf_counter() - t0
        later = []
        for i in range(1, calls):
            time.sleep(0.06)  # codecarbon re-measures only when its last reading is stale
            t0 = time.perf_counter()
            yprov4ml.log_carbon_metrics(step=i)
            later.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        yprov4ml.end_run()
        end = time.perf_counter() - t0
    print(f"log_carbon_metrics: first call (tracker start) {first:.3f} s; later calls median "
          f"{statistics.median(later) * 1e3:.2f} ms; end_run with tracker stop {end:.3f} s")


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
    system_metrics()
    carbon_metrics()
    sampler_overhead()
