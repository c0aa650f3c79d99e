"""MLflow link benchmark: export time at 1e3, 1e5, 1e6 points, and log_metric with the live mirror on vs off.

    python bench/bench_mlflow.py            # full run (the 1e6 export takes a few minutes)
    python bench/bench_mlflow.py --quick    # 1e3 and 1e5 only, fewer mirror points

Export is measured against its floor in the same run: MLflow's own
``MlflowClient.log_batch`` sending the same points (already built, 1,000 per
call) to a fresh store of the same kind. The mirror is measured in fresh
processes, alternating off / on (sqlite store, and a local ``mlflow server``):
the hot path's per-call median, and the whole process's CPU per point from
start_run to the end of end_run (the writer and mirror threads included; the
server's own CPU is in its process and not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import per_call_us, run_worker, table  # noqa: E402


def record_run(save_dir: Path, points: int) -> Path:
    """A run with ``points`` loss points; its directory."""
    import yprov4ml

    run = yprov4ml.start_run("www.example.org", "bench", save_dir)
    for i in range(points):
        yprov4ml.log_metric("loss", 1.0 / (i + 1), "training", i)
    yprov4ml.end_run()
    return run.run_dir


def worker_export(points: int) -> None:
    """In a fresh process: export a ``points``-point run to sqlite, then MLflow's own log_batch of the same."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from yprov4ml.integrations.mlflow_export import export_runs

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        run_dir = record_run(Path(tmp) / "prov", points)
        for store in ("warm.db", "ours.db", "floor.db"):  # the first opening of a store creates its tables
            MlflowClient(f"sqlite:///{tmp}/{store}").search_experiments()
        t0, c0 = time.perf_counter(), time.process_time()
        export_runs([run_dir], f"sqlite:///{tmp}/ours.db", progress=False)
        ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        client = MlflowClient(f"sqlite:///{tmp}/floor.db")
        batches = [[Metric("training/loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i)
                    for i in range(start, min(start + 1000, points))] for start in range(0, points, 1000)]
        t0 = time.perf_counter()
        mlflow_id = client.create_run(client.create_experiment("floor")).info.run_id
        for batch in batches:
            client.log_batch(mlflow_id, metrics=batch)
        floor_s = time.perf_counter() - t0
    print(json.dumps({"points": points, "export_s": round(ours_s, 2), "export_cpu_s": round(ours_cpu, 2),
                      "log_batch_floor_s": round(floor_s, 2), "ratio": round(ours_s / floor_s, 2),
                      "points_per_s": int(points / ours_s)}))


def worker_mirror(points: int, uri: str) -> None:
    """In a fresh process: log ``points`` points with the mirror to ``uri`` (or none) and time it."""
    import yprov4ml

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if uri == "sqlite":
            uri = f"sqlite:///{tmp}/mirror.db"
        c0 = time.process_time()
        yprov4ml.start_run("www.example.org", "mirror", Path(tmp) / "prov",
                           mlflow_tracking_uri=None if uri == "off" else uri)
        log = yprov4ml.log_metric
        cost = per_call_us(lambda i: log("loss", 0.5 + i * 1e-9, "training", i), points, 1000)
        t0 = time.perf_counter()
        yprov4ml.end_run()
        end_s = time.perf_counter() - t0
        cpu_us = (time.process_time() - c0) / points * 1e6
    print(json.dumps({"log_metric_us": round(cost, 3), "cpu_us_per_point": round(cpu_us, 2),
                      "end_run_s": round(end_s, 2)}))


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen([str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{root}/server.db",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("mlflow server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        worker_export(int(rest[0])) if kind == "export" else worker_mirror(int(rest[0]), rest[1])
        return
    me = str(Path(__file__).resolve())
    sizes = [1_000, 100_000] if args.quick else [1_000, 100_000, 1_000_000]
    rows = [run_worker(me, "--worker", "export", str(n)) for n in sizes]
    print("Export to a sqlite store, against MLflow's own log_batch of the same points (the floor):")
    print(table(rows, [("points", "points"), ("export_s", "export s"), ("export_cpu_s", "CPU s"),
                       ("log_batch_floor_s", "log_batch floor s"), ("ratio", "ratio"), ("points_per_s", "points/s")]))

    points = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as root:
        server, http_uri = start_server(Path(root))
        try:
            results: dict[str, list[dict]] = {"off": [], "sqlite": [], http_uri: []}
            for _ in range(2 if args.quick else 3):  # alternate, so drift hits every configuration alike
                for uri in results:
                    results[uri].append(run_worker(me, "--worker", "mirror", str(points), uri))
        finally:
            server.terminate()
    rows = []
    base = sorted(r["log_metric_us"] for r in results["off"])[len(results["off"]) // 2]
    for uri, runs in results.items():
        median = {key: sorted(r[key] for r in runs)[len(runs) // 2] for key in runs[0]}
        rows.append({"mirror": "http server" if uri.startswith("http") else uri, **median,
                     "ratio": round(median["log_metric_us"] / base, 2)})
    print(f"\nlog_metric with the live mirror ({points} points per run, medians of {len(results['off'])} "
          "alternating runs):")
    print(table(rows, [("mirror", "mirror"), ("log_metric_us", "log_metric µs"), ("ratio", "vs off"),
                       ("cpu_us_per_point", "process CPU µs/point"), ("end_run_s", "end_run s")]))


if __name__ == "__main__":
    main()
