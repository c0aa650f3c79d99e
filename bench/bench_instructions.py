"""Instructions per log_metric point and per log_system_metrics call, whole process, under callgrind.

    python bench/bench_instructions.py            # 20,000 and 40,000 points, 200 and 400 system samples
    python bench/bench_instructions.py --quick    # 5,000 and 10,000 points
    python bench/bench_instructions.py --against /tmp/old   # also log_metric of another checkout, same run

Wall time on a shared 2-core machine moves by tens of percent; the instructions a process executes do not.
Each figure is the difference between two fresh processes that differ only in how many calls they make,
divided by that difference: start-up, start_run and end_run cancel out, and every thread counts (the
background writer's work is in the figure). The baseline, measured the same way in the same invocation, is
an empty Python function with log_metric's signature. How often the writer thread gets the interpreter
under valgrind varies from process to process, so each figure is the median of three such differences.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402


def worker(kind: str, calls: int) -> None:
    """In a process valgrind runs: start a run, make ``calls`` calls of ``kind``, end the run."""
    import yprov4ml

    def empty(key, value, context=None, step=None, timestamp=None):
        return None

    with tempfile.TemporaryDirectory() as tmp:
        yprov4ml.start_run("www.example.org", "bench", tmp)
        log, training = yprov4ml.log_metric, yprov4ml.Context.TRAINING
        if kind == "log_metric":
            for i in range(calls):
                log("loss", 0.5 + i * 1e-9, training, i)
        elif kind == "empty":
            for i in range(calls):
                empty("loss", 0.5 + i * 1e-9, training, i)
        elif kind == "log_system_metrics":
            for i in range(calls):
                yprov4ml.log_system_metrics(training, i)
        yprov4ml.end_run()


def instructions(kind: str, calls: int, tree: str | None = None) -> int:
    """Instructions the whole process executed (every thread), read from callgrind's summary; ``tree``: a
    checkout of yprov4ml to import instead of the installed one."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "callgrind.out")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if tree is not None:
            env["PYTHONPATH"] = tree
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               sys.executable, __file__, "--worker", kind, str(calls)],
                              capture_output=True, text=True, env=env, check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind printed no instruction count:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def per_call(kind: str, low: int, tree: str | None = None, repeats: int = 3) -> float:
    """Instructions per call: the median over ``repeats`` of (count at 2 x low calls - count at low calls) / low."""
    return statistics.median((instructions(kind, 2 * low, tree) - instructions(kind, low, tree)) / low
                             for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--against", metavar="TREE", help="a checkout (git worktree) of another commit whose "
                        "log_metric is measured too, as the baseline of this run")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions needs valgrind (Debian: apt-get install valgrind)")
    points = 5_000 if args.quick else 20_000
    samples = 50 if args.quick else 200
    print(f"machine: {machine()}")
    empty = per_call("empty", points)
    metric = per_call("log_metric", points)
    system = per_call("log_system_metrics", samples)
    print(f"instructions per call, whole process (callgrind, difference of {points:,} and {2 * points:,} calls):")
    print(f"  empty call of log_metric's signature: {empty:,.0f}")
    print(f"  log_metric point: {metric:,.0f} (ratio to the empty call {metric / empty:.1f}x)")
    if args.against:
        other = per_call("log_metric", points, args.against)
        print(f"  log_metric point of {args.against}: {other:,.0f} (this tree / that one: {metric / other:.3f})")
    print(f"  log_system_metrics call ({samples} and {2 * samples} calls): {system:,.0f} "
          f"(ratio to the empty call {system / empty:.0f}x)")


if __name__ == "__main__":
    main()
