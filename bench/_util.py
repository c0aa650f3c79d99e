"""Helpers shared by the benchmark scripts: timing (median, wall and process CPU per call), a worker
subprocess, tables, and the machine's description for bench/results/."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable


def per_call_us(fn: Callable[[int], None], calls: int, batch: int) -> float:
    """Median over batches of the per-call time in µs, ``fn(i)`` called ``calls`` times."""
    return measure_calls(fn, calls, batch)["median_us"]


def measure_calls(fn: Callable[[int], None], calls: int, batch: int,
                  settle: Callable[[], None] | None = None) -> dict[str, float]:
    """The cost of ``fn(i)``, ``calls`` times, in µs per call, three ways.

    ``median_us``: the median over batches of ``batch`` calls — the typical call, blind to the batches in
    which a background thread ran; ``wall_us``: the whole wall time over the calls; ``cpu_us``: the
    process's CPU time over the calls, every thread included (after ``settle()``, which finishes what the
    calls left to background threads, such as writing buffered points).
    """
    timings = []
    clock = time.perf_counter
    wall0, cpu0 = clock(), time.process_time()
    for start in range(0, calls, batch):
        end = min(start + batch, calls)
        t0 = clock()
        for i in range(start, end):
            fn(i)
        timings.append((clock() - t0) / (end - start) * 1e6)
    if settle is not None:
        settle()
    return {"median_us": statistics.median(timings), "wall_us": (clock() - wall0) / calls * 1e6,
            "cpu_us": (time.process_time() - cpu0) / calls * 1e6}


def run_worker(script: str, *args: str) -> dict:
    """Run ``python script args`` and parse the JSON object it prints last."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain-text table: columns are (key, header)."""
    widths = [max(len(h), *(len(str(r.get(k, ""))) for r in rows)) for k, h in columns]
    lines = ["  ".join(h.rjust(w) for (_, h), w in zip(columns, widths))]
    lines += ["  ".join(str(r.get(k, "")).rjust(w) for (k, _), w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line saying where the figures were taken (for the raw outputs under bench/results/)."""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        model = platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({model}), {memory:.0f} GiB, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
