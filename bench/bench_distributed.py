"""Distributed benchmark: prov-merge of 8 / 64 / 512 realistic rank documents, and start-up coordination.

    python bench/bench_distributed.py

Target (issue 4): 512 ranks merged in <= 15 s on a 2-core machine, cost linear in the number of ranks.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_worker, table  # noqa: E402

WORLD = 512


def make_rank_documents(target: Path, world: int = WORLD) -> None:
    """One real run document (20 metric series, 10 params, 5 artifacts), then one copy per rank with its ids."""
    import yprov4ml

    with tempfile.TemporaryDirectory() as tmp:
        run = yprov4ml.start_run("www.example.org", "bench", tmp, run_id="merge-bench", save_after_n_logs=500)
        yprov4ml.log_params({f"param_{i}": i * 0.1 for i in range(10)})
        for s in range(20):
            context = yprov4ml.Context.TRAINING if s < 15 else yprov4ml.Context.VALIDATION
            for step in range(200):
                yprov4ml.log_metric(f"metric_{s}", 1.0 / (step + 1 + s), context, step)
        for a in range(5):
            path = Path(tmp) / f"artifact_{a}.bin"
            path.write_bytes(os.urandom(4096))
            yprov4ml.log_artifact(path)
        source = yprov4ml.end_run()
        template = source.read_text()
        for name in ("metrics", "artifacts"):
            shutil.copytree(run.run_dir / name, target / name, dirs_exist_ok=True)
    for rank in range(world):
        doc = json.loads(template.replace("run:rank-0", f"run:rank-{rank}"))
        activity = doc["activity"][f"run:rank-{rank}"]
        activity["yprov:rank"] = {"$": str(rank), "type": "xsd:int"}
        activity["yprov:world_size"] = {"$": str(world), "type": "xsd:int"}
        (target / f"prov.rank{rank}.json").write_text(json.dumps(doc, indent=1))


def worker(run_dir: str, ranks: int) -> None:
    from yprov4ml.distributed.merge import merge

    inputs = [str(Path(run_dir) / f"prov.rank{r}.json") for r in range(ranks)]
    out = Path(run_dir) / f"merged-{ranks}.json"
    t0 = time.perf_counter()
    result = merge(inputs, out, progress=False)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"ranks": ranks, "merge_s": round(elapsed, 3), "per_rank_ms": round(elapsed / ranks * 1e3, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "records": result.records, "output_mb": round(out.stat().st_size / 2**20, 1)}))


STARTUP = """
import sys, time
if sys.argv[1] == "preinit":
    from mpi4py import MPI  # the user's script initialised MPI already
import yprov4ml
t0 = time.perf_counter()
run = yprov4ml.start_run("www.example.org", "startup", sys.argv[2], collect_all_processes=True,
                         collection_timeout_s=30)
yprov4ml.log_metric("loss", 1.0)
elapsed = time.perf_counter() - t0
yprov4ml.end_run()
print(f"STARTUP {run.rank} {elapsed:.4f}", flush=True)
"""


def startup(repeats: int = 5) -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    results: dict[str, list[float]] = {"single process": [], "mpiexec -n 4, MPI initialised by the script": [],
                                       "mpiexec -n 4, yprov4ml initialises MPI": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for label, cmd in (("single process", [sys.executable, "-c", STARTUP, "plain", tmp]),
                               ("mpiexec -n 4, MPI initialised by the script",
                                [mpiexec, "-n", "4", sys.executable, "-c", STARTUP, "preinit", tmp]),
                               ("mpiexec -n 4, yprov4ml initialises MPI",
                                [mpiexec, "-n", "4", sys.executable, "-c", STARTUP, "plain", tmp])):
                if mpiexec is None and "mpiexec" in label:
                    continue
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                times = [float(line.split()[2]) for line in out.splitlines() if line.startswith("STARTUP")]
                results[label].append(max(times))  # the job starts logging when its slowest rank does
    base = statistics.median(results["single process"])
    for label, times in results.items():
        if times:
            print(f"  start_run → first log_metric, {label}: {statistics.median(times) * 1e3:.1f} ms "
                  f"(x{statistics.median(times) / base:.1f} the single process)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_rank_documents(Path(tmp))
        size = (Path(tmp) / "prov.rank0.json").stat().st_size
        print(f"generated {WORLD} rank documents ({size / 1024:.0f} KB each: 20 metric series, 10 params, "
              f"5 artifacts) in {time.perf_counter() - t0:.1f} s")
        rows = [run_worker(__file__, "--worker", tmp, str(n)) for n in (8, 64, 512)]
    print(table(rows, [("ranks", "ranks"), ("merge_s", "merge s"), ("per_rank_ms", "ms per rank"),
                       ("peak_rss_mb", "peak RSS MB"), ("records", "records"), ("output_mb", "output MB")]))
    print(f"linearity: ms per rank at 512 / at 64 = {rows[2]['per_rank_ms'] / rows[1]['per_rank_ms']:.2f}")
    print("start-up coordination (median of 5):")
    startup()


if __name__ == "__main__":
    main()
