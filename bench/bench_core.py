"""Core benchmark: log_metric cost, end_run time, peak RSS, bytes per point, training overhead, import time.

    python bench/bench_core.py            # full run (1e3 .. 1e6 points, 9 pairs of 4,000-step loops), minutes
    python bench/bench_core.py --quick    # smaller sizes, for a smoke check

Every figure is printed next to its baseline from the same invocation. log_metric is reported three ways:
the median over batches of calls (the typical call), the whole wall time per call, and the process's CPU
time per point with the background writer's work included.
Targets: log_metric <= 1.5 us; end_run <= 15 ms at 1,000 points (issue 16); training overhead <= 1 % with
the loss logged every step and a checkpoint per epoch (issue 16); peak RSS at 1e6 points within 30 MB of
the 1e3-point run; import <= 0.3 s.
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
from _util import machine, measure_calls, per_call_us, run_worker, table  # noqa: E402


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
        # process CPU: every thread, the writer's chunks included (what is still buffered is drained at the end)
        cost = measure_calls(lambda i: log("loss", 0.5 + i * 1e-9, training, i), points, batch, run._writer.drain)
        t0 = time.perf_counter()
        path = yprov4ml.end_run()
        end_s = time.perf_counter() - t0
        metric_file = run.run_dir / "metrics.rank0.ymetric"
        size = metric_file.stat().st_size
        prov_size = path.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"points": points, "log_metric_us": round(cost["median_us"], 3),
                      "wall_us_per_point": round(cost["wall_us"], 3), "empty_call_us": round(baseline, 3),
                      "ratio": round(cost["median_us"] / baseline, 2), "cpu_us_per_point": round(cost["cpu_us"], 3),
                      "end_run_s": round(end_s, 3),
                      "peak_rss_mb": round(peak_mb, 1), "bytes_per_point": round(size / points, 2),
                      "prov_json_kb": round(prov_size / 1024, 1)}))


STEPS_PER_EPOCH = 1000
BATCH = 128


def training_loop(epochs: int, record: bool, save_dir: str, settle_s: float = 0.0) -> tuple[float, float, float, float]:
    """An MLP (about 0.4 MB of parameters) on synthetic data, ``epochs`` x 1,000 steps; with ``record`` the
    loss is logged every step.

    Both loops save a checkpoint per epoch (torch.save for the plain one,
    save_model_version for the recorded one), so the difference is the cost of
    recording. Returns (loop seconds, start_run seconds, end_run seconds, loop CPU
    seconds of the whole process, background threads included). ``settle_s``: a
    pause before the loop (both kinds), after which start_run's one-off capture
    in the background (code snapshot, git, environment) is over: what is left is
    the cost per step.
    """
    import torch

    import yprov4ml

    torch.manual_seed(0)
    x, y = torch.randn(STEPS_PER_EPOCH * BATCH, 64), torch.randn(STEPS_PER_EPOCH * BATCH, 1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 1))  # 83,713 parameters: 0.33 MB
    optim = torch.optim.SGD(model.parameters(), lr=1e-3)
    start_s = end_s = 0.0
    if record:
        t0 = time.perf_counter()
        yprov4ml.start_run("www.example.org", "overhead", save_dir)
        start_s = time.perf_counter() - t0
    time.sleep(settle_s)
    t0, c0 = time.perf_counter(), time.process_time()
    if record:
        yprov4ml.log_params({"lr": 1e-3, "epochs": epochs, "batch_size": BATCH})
    for epoch in range(epochs):
        for step in range(STEPS_PER_EPOCH):
            i = step * BATCH
            optim.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[i:i + BATCH]), y[i:i + BATCH])
            loss.backward()
            optim.step()
            if record:
                yprov4ml.log_metric("loss", loss.item(), yprov4ml.Context.TRAINING, epoch * STEPS_PER_EPOCH + step)
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


def overhead(pairs: int, epochs: int, settle_s: float = 0.0) -> dict:
    import torch

    torch.set_num_threads(1)  # steadier timings on a 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        training_loop(1, True, tmp)  # warm-up: imports, allocator, first checkpoint
        training_loop(1, False, tmp)
        plain, recorded, ratios, cpu_ratios = [], [], [], []
        for k in range(pairs):  # alternate (and swap the order), so drift hits both equally
            if k % 2:
                recorded.append(training_loop(epochs, True, tmp, settle_s))
                plain.append(training_loop(epochs, False, tmp, settle_s))
            else:
                plain.append(training_loop(epochs, False, tmp, settle_s))
                recorded.append(training_loop(epochs, True, tmp, settle_s))
            ratios.append(recorded[-1][0] / plain[-1][0])
            cpu_ratios.append(recorded[-1][3] / plain[-1][3])
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    # The median of paired ratios: this 2-core machine's noise cancels within a pair; the spread says how much.
    return {"plain_s": round(statistics.median(r[0] for r in plain), 3),
            "recorded_s": round(statistics.median(r[0] for r in recorded), 3),
            "overhead_pct": round((statistics.median(ratios) - 1) * 100, 2),
            "overhead_iqr_pct": [round((q - 1) * 100, 2) for q in (quartiles[0], quartiles[2])],
            "overhead_range_pct": [round((min(ratios) - 1) * 100, 2), round((max(ratios) - 1) * 100, 2)],
            "cpu_overhead_pct": round((statistics.median(cpu_ratios) - 1) * 100, 2),
            "steps": epochs * STEPS_PER_EPOCH, "pairs": pairs,
            "start_run_s": round(statistics.median(r[1] for r in recorded), 3),
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
    print(f"machine: {machine()}")
    rows = [run_worker(__file__, "--worker", str(n)) for n in sizes]
    print("log_metric against an empty call of the same signature (median over batches of calls; whole wall "
          "time per point; process CPU per point, every thread included):")
    print(table(rows, [("points", "points"), ("log_metric_us", "median us"), ("wall_us_per_point", "wall us/point"),
                       ("empty_call_us", "empty call us"), ("ratio", "ratio"),
                       ("cpu_us_per_point", "CPU us/point, all threads"),
                       ("end_run_s", "end_run s"), ("peak_rss_mb", "peak RSS MB"),
                       ("bytes_per_point", "bytes/point"), ("prov_json_kb", "PROV-JSON KB")]))
    print(f"peak RSS growth from {sizes[0]} to {sizes[-1]} points: "
          f"{rows[-1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:.1f} MB")
    for settle, what in ((0.0, "the loop right after start_run, its one-off background capture included"),
                         (1.5, "the loop 1.5 s after start_run, once that capture is over: the cost per step")):
        ov = overhead(pairs=3 if args.quick else 9, epochs=2 if args.quick else 4, settle_s=settle)
        print(f"training loop ({ov['steps']} steps, loss every step, checkpoint per epoch; {what}), {ov['pairs']} "
              f"alternating pairs: plain {ov['plain_s']} s, recorded {ov['recorded_s']} s (medians); overhead (median "
              f"of paired ratios) {ov['overhead_pct']} % wall (quartiles {ov['overhead_iqr_pct'][0]} .. "
              f"{ov['overhead_iqr_pct'][1]} %, range {ov['overhead_range_pct'][0]} .. "
              f"{ov['overhead_range_pct'][1]} %), "
              f"{ov['cpu_overhead_pct']} % CPU time; outside the loop: start_run {ov['start_run_s']} s, "
              f"end_run {ov['end_run_s']} s")
    imp = import_time()
    print(f"import yprov4ml: {imp['import_s']} s (python alone {imp['python_s']} s, with import {imp['with_import_s']} s)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
