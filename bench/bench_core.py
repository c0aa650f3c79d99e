"""Core benchmark: log_metric cost, end_run time, peak RSS, bytes per point, training overhead, import time.

    python bench/bench_core.py            # full run (1e3 .. 1e6 points), a few minutes
    python bench/bench_core.py --quick    # smaller sizes, for a smoke check

Every figure is printed next to its baseline from the same invocation.
Targets (issue 2): log_metric <= 1.5 us; training overhead <= 2 %; peak RSS at
1e6 points within 30 MB of the 1e3-point run; end_run(1e6) <= 1 s; import <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import per_call_us, run_worker, table  # noqa: E402


def worker_log_metric(points: int) -> None:
    """In a fresh process: log ``points`` points, then end the run; print the figures as JSON."""
    import yprov4ml

    def empty(key, value, context=None, step=None, timestamp=None):
        return None

    batch = 1000 if points >= 10_000 else 100
    baseline = per_call_us(lambda i: empty("loss", 0.5, yprov4ml.Context.TRAINING, i), min(points, 100_000), batch)
    with tempfile.TemporaryDirectory() as tmp:
        run = yprov4ml.start_run("www.example.org", "bench", tmp)
        log = yprov4ml.log_metric
        training = yprov4ml.Context.TRAINING
        cpu0 = time.process_time()  # every thread of the process: the writer's chunks included
        cost = per_call_us(lambda i: log("loss", 0.5 + i * 1e-9, training, i), points, batch)
        run._writer.drain()  # what is still buffered costs the same again, at the end instead
        cpu_us = (time.process_time() - cpu0) / points * 1e6
        t0 = time.perf_counter()
        path = yprov4ml.end_run()
        end_s = time.perf_counter() - t0
        metric_file = run.run_dir / "metrics.rank0.ymetric"
        size = metric_file.stat().st_size
        prov_size = path.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"points": points, "log_metric_us": round(cost, 3), "empty_call_us": round(baseline, 3),
                      "ratio": round(cost / baseline, 2), "cpu_us_per_point": round(cpu_us, 3),
                      "end_run_s": round(end_s, 3),
                      "peak_rss_mb": round(peak_mb, 1), "bytes_per_point": round(size / points, 2),
                      "prov_json_kb": round(prov_size / 1024, 1)}))


def training_loop(epochs: int, record: bool, save_dir: str) -> tuple[float, float, float, float]:
    """A small MLP on synthetic data; with ``record`` the loss is logged every step.

    Both loops save a checkpoint per epoch (torch.save for the plain one,
    save_model_version for the recorded one), so the difference is the cost of
    recording. Returns (loop seconds, start_run seconds, end_run seconds, loop CPU
    seconds of the whole process, background threads included).
    """
    import torch

    import yprov4ml

    torch.manual_seed(0)
    x, y = torch.randn(4096, 32), torch.randn(4096, 1)
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
    optim = torch.optim.SGD(model.parameters(), lr=1e-2)
    start_s = end_s = 0.0
    if record:
        t0 = time.perf_counter()
        yprov4ml.start_run("www.example.org", "overhead", save_dir)
        start_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    if record:
        yprov4ml.log_params({"lr": 1e-2, "epochs": epochs, "batch_size": 32})
    for epoch in range(epochs):
        for i in range(0, 4096, 32):
            optim.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            optim.step()
            if record:
                yprov4ml.log_metric("loss", loss.item(), yprov4ml.Context.TRAINING, epoch * 128 + i // 32)
            else:
                loss.item()  # the same synchronisation point as the recorded loop
        if record:
            yprov4ml.save_model_version(model, "mlp", yprov4ml.Context.TRAINING, epoch)
        else:
            torch.save(model.state_dict(), os.path.join(save_dir, f"plain.{epoch}.pt"))
    loop_s, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
    if record:
        t0 = time.perf_counter()
        yprov4ml.end_run()
        end_s = time.perf_counter() - t0
    return loop_s, start_s, end_s, loop_cpu


def overhead(repeats: int, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)  # steadier timings on a 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        training_loop(1, True, tmp)  # warm-up: imports, allocator, first checkpoint
        training_loop(1, False, tmp)
        plain, recorded, ratios, cpu_ratios = [], [], [], []
        for k in range(repeats):  # alternate (and swap the order), so drift hits both equally
            if k % 2:
                recorded.append(training_loop(epochs, True, tmp))
                plain.append(training_loop(epochs, False, tmp))
            else:
                plain.append(training_loop(epochs, False, tmp))
                recorded.append(training_loop(epochs, True, tmp))
            ratios.append(recorded[-1][0] / plain[-1][0])
            cpu_ratios.append(recorded[-1][3] / plain[-1][3])
    p = statistics.median(loop for loop, *_ in plain)
    r = statistics.median(loop for loop, *_ in recorded)
    # The median of paired ratios: this 2-core machine's noise (±20 % per run) cancels within a pair.
    return {"plain_s": round(p, 3), "recorded_s": round(r, 3),
            "overhead_pct": round((statistics.median(ratios) - 1) * 100, 2),
            "cpu_overhead_pct": round((statistics.median(cpu_ratios) - 1) * 100, 2),
            "steps": epochs * 128, "start_run_s": round(statistics.median(r[1] for r in recorded), 3),
            "end_run_s": round(statistics.median(r[2] for r in recorded), 3)}


def import_time(repeats: int = 7) -> dict:
    def best(code: str) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    base, full = best("pass"), best("import yprov4ml")
    return {"python_s": round(base, 3), "with_import_s": round(full, 3), "import_s": round(full - base, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_log_metric(args.worker)
        return
    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    rows = [run_worker(__file__, "--worker", str(n)) for n in sizes]
    print("log_metric (median per call over batches) against an empty call of the same signature:")
    print(table(rows, [("points", "points"), ("log_metric_us", "log_metric us"), ("empty_call_us", "empty call us"),
                       ("ratio", "ratio"), ("cpu_us_per_point", "CPU us/point, all threads"),
                       ("end_run_s", "end_run s"), ("peak_rss_mb", "peak RSS MB"),
                       ("bytes_per_point", "bytes/point"), ("prov_json_kb", "PROV-JSON KB")]))
    print(f"peak RSS growth from {sizes[0]} to {sizes[-1]} points: "
          f"{rows[-1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:.1f} MB")
    ov = overhead(repeats=4 if args.quick else 21, epochs=2 if args.quick else 5)
    print(f"training loop ({ov['steps']} steps, loss every step, checkpoint per epoch), median of alternating runs: "
          f"plain {ov['plain_s']} s, recorded {ov['recorded_s']} s, overhead (median of paired ratios) "
          f"{ov['overhead_pct']} % wall, {ov['cpu_overhead_pct']} % CPU time; "
          f"outside the loop: start_run {ov['start_run_s']} s, end_run {ov['end_run_s']} s")
    imp = import_time()
    print(f"import yprov4ml: {imp['import_s']} s (python alone {imp['python_s']} s, with import {imp['with_import_s']} s)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
