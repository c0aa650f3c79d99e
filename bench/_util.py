"""Helpers shared by the benchmark scripts (timing, medians, a worker subprocess)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Callable


def per_call_us(fn: Callable[[int], None], calls: int, batch: int) -> float:
    """Median over batches of the per-call time in µs, ``fn(i)`` called ``calls`` times."""
    timings = []
    clock = time.perf_counter
    for start in range(0, calls, batch):
        end = min(start + batch, calls)
        t0 = clock()
        for i in range(start, end):
            fn(i)
        timings.append((clock() - t0) / (end - start) * 1e6)
    return statistics.median(timings)


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
