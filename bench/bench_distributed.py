"""Distributed benchmark: prov-merge of up to N realistic rank documents, and an mpiexec job end to end.

    python bench/bench_distributed.py                          # merge 64 / 512 / 4096 ranks; mpiexec -n 64
    python bench/bench_distributed.py --ranks 512 --mpi-ranks 8   # smaller
    python bench/bench_distributed.py --sizes 4096 16384 65536 --mpi-ranks 0   # the Frontier-scale figures

Targets (issue 16): 4,096 rank documents merged in <= 30 s with peak RSS <= 300 MB on a 2-core machine
(the merge streams), cost linear in the number of ranks; for the mpiexec job: start-up, coordination
(rank 0 collecting every rank's report) and end_run per rank. Each rank writes its own figures to a file
of its own: their output lines never interleave.
"""

from __future__ import annotations

import argparse
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
from _util import machine, run_worker, table  # noqa: E402

def make_rank_documents(target: Path, world: int) -> None:
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
        shutil.copytree(run.run_dir / "artifacts", target / "artifacts", dirs_exist_ok=True)
        shutil.copyfile(run.run_dir / "metrics.rank0.ymetric", target / "metrics.rank0.ymetric")
    from yprov4ml.storage.layout import prov_file

    for rank in range(world):
        doc = json.loads(template.replace("run:rank-0", f"run:rank-{rank}"))
        activity = doc["activity"][f"run:rank-{rank}"]
        activity["yprov:rank"] = {"$": str(rank), "type": "xsd:int"}
        activity["yprov:world_size"] = {"$": str(world), "type": "xsd:int"}
        path = prov_file(target, rank)  # where a rank of a job this size writes it: ranks/ beyond the first 1,000
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1))


def layout_figures(run_dir: Path) -> dict:
    """Files in the run directory, and the most entries one of its directories holds."""
    files, largest = 0, 0
    for _, dirs, names in os.walk(run_dir):
        files += len(names)
        largest = max(largest, len(names) + len(dirs))
    return {"files": files, "largest_dir": largest}


def worker(run_dir: str, ranks: int) -> None:
    from yprov4ml.distributed.merge import merge

    from yprov4ml.storage.layout import prov_file

    inputs = [str(prov_file(Path(run_dir), r)) for r in range(ranks)]
    out = Path(run_dir).parent / f"merged-{ranks}.json"
    t0 = time.perf_counter()
    result = merge(inputs, out, progress=False)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"ranks": ranks, "merge_s": round(elapsed, 3), "per_rank_ms": round(elapsed / ranks * 1e3, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "records": result.records, "output_mb": round(out.stat().st_size / 2**20, 1),
                      "output": str(out)}))


def validate_worker(path: str) -> None:
    """``yprov4ml validate``'s check of the merged document (streamed above 64 MiB): time, peak RSS, verdict."""
    from yprov4ml.prov.validate import validate_file

    t0 = time.perf_counter()
    report = validate_file(path)
    verdict = "too big" if report.too_big else "valid" if report.ok else "INVALID"
    print(json.dumps({"validate_s": round(time.perf_counter() - t0, 1), "verdict": verdict,
                      "validate_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def show_worker(path: str) -> None:
    """``yprov4ml show`` of the merged document: time, peak RSS."""
    from yprov4ml.tools.show import show

    t0 = time.perf_counter()
    lines = show(path).count("\n")
    print(json.dumps({"show_s": round(time.perf_counter() - t0, 1), "show_lines": lines,
                      "show_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


JOB = """
import json, os, sys, time
began = time.perf_counter()  # the interpreter is up: what came before is Python's own start
from mpi4py import MPI
import yprov4ml
from yprov4ml.distributed import ending
imported = time.perf_counter()
timed = {}
def timed_end(run, status, real=ending.end_with_other_ranks):
    t0 = time.perf_counter()
    real(run, status)
    timed["coordination_s"] = time.perf_counter() - t0
ending.end_with_other_ranks = timed_end  # the part of end_run that waits on, or for, the other ranks
t0 = time.perf_counter()
run = yprov4ml.start_run("www.example.org", "job", sys.argv[1], collect_all_processes=True)
start_s = time.perf_counter() - t0
for step in range(100):
    yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
yprov4ml.log_system_metrics(step=0)
t0 = time.perf_counter()
yprov4ml.end_run()
end_s = time.perf_counter() - t0
figures = {"rank": run.rank, "import_s": imported - began, "start_run_s": start_s, "end_run_s": end_s, **timed}
with open(os.path.join(sys.argv[2], f"rank{run.rank}.json"), "w") as out:
    json.dump(figures, out)
"""


def mpi_job(ranks: int) -> None:
    """``mpiexec -n ranks`` of a light job: each rank records 100 points and ends; per-rank figures."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        print("mpiexec: not installed (pip install mpich mpi4py); no end-to-end figures")
        return
    with tempfile.TemporaryDirectory() as tmp:
        figures_dir = Path(tmp) / "figures"
        figures_dir.mkdir()
        t0 = time.perf_counter()
        subprocess.run([mpiexec, "-n", str(ranks), sys.executable, "-c", JOB, str(Path(tmp) / "prov"),
                        str(figures_dir)], check=True, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
        rows = [json.loads(p.read_text()) for p in figures_dir.glob("rank*.json")]
        (run_dir,) = (Path(tmp) / "prov" / "job").iterdir()
        collection = json.loads((run_dir / "collection.json").read_text())["activity"]["run:distributed"]
    if len(rows) != ranks:
        print(f"mpiexec -n {ranks}: only {len(rows)} ranks reported their figures")

    def spread(name: str) -> str:
        values = sorted(r[name] for r in rows if name in r)
        return f"median {statistics.median(values):.3f} s, max {values[-1]:.3f} s"

    rank0 = next(r for r in rows if r["rank"] == 0)
    print(f"mpiexec -n {ranks} on {os.cpu_count()} cores, a light job (100 points, one system sample a rank): "
          f"{wall:.1f} s wall in all; collection {collection['yprov:status']} by "
          f"{collection['yprov:coordinated_by']}, missing {collection['yprov:missing_ranks']}")
    print(f"  import (mpi4py, yprov4ml): {spread('import_s')}")
    print(f"  start_run (run-id agreement): {spread('start_run_s')}")
    print(f"  end_run: {spread('end_run_s')}; of which coordination: {spread('coordination_s')} "
          f"(rank 0, collecting {ranks} reports: {rank0['coordination_s']:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=4096, help="largest merge (default 4096)")
    parser.add_argument("--mpi-ranks", type=int, default=64, help="ranks of the mpiexec job (0: none)")
    parser.add_argument("--sizes", type=int, nargs="+", help="the rank counts to merge (default 64, 512 and --ranks)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--validate", help=argparse.SUPPRESS)
    parser.add_argument("--show", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.validate:
        validate_worker(args.validate)
        return
    if args.show:
        show_worker(args.show)
        return
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    print(f"machine: {machine()}")
    sizes = sorted(set(args.sizes)) if args.sizes else sorted({n for n in (64, 512, args.ranks) if n <= args.ranks})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        t0 = time.perf_counter()
        make_rank_documents(run_dir, sizes[-1])
        size = (run_dir / "prov.rank0.json").stat().st_size
        print(f"generated {sizes[-1]} rank documents ({size / 1024:.0f} KB each: 20 metric series, 10 params, "
              f"5 artifacts) in {time.perf_counter() - t0:.1f} s; run directory of {sizes[-1]} ranks: "
              + ", ".join(f"{k} {v}" for k, v in layout_figures(run_dir).items()))
        rows = [run_worker(__file__, "--worker", str(run_dir), str(n)) for n in sizes]
        for row in rows:  # each check from this small process: Linux keeps a parent's peak RSS across exec
            output = row.pop("output")
            row.update(run_worker(__file__, "--validate", output))
            row.update(run_worker(__file__, "--show", output))
            Path(output).unlink()
    print(table(rows, [("ranks", "ranks"), ("merge_s", "merge s"), ("per_rank_ms", "ms per rank"),
                       ("peak_rss_mb", "peak RSS MB"), ("records", "records"), ("output_mb", "output MB"),
                       ("validate_s", "validate s"), ("validate_peak_mb", "validate peak RSS MB"),
                       ("verdict", "verdict"), ("show_s", "show s"), ("show_peak_mb", "show peak RSS MB")]))
    if len(rows) > 1:
        print(f"linearity: ms per rank at {rows[-1]['ranks']} / at {rows[0]['ranks']} = "
              f"{rows[-1]['per_rank_ms'] / rows[0]['per_rank_ms']:.2f}")
    if args.mpi_ranks:
        mpi_job(args.mpi_ranks)


if __name__ == "__main__":
    main()
