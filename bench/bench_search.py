"""Search benchmark: the run index over N runs — cold, again with nothing changed — and a filter query.

    python bench/bench_search.py               # 10,000 runs
    python bench/bench_search.py --runs 1000   # smaller

Targets (issue 30): re-index with nothing changed <= 1 s for 10,000 runs; a filter query over 10,000 runs
<= 50 ms. Each figure comes with the floor it is measured against in the same run: parsing every document
(cold index), walking and stat-ing the tree (re-index), and a Python scan of the already parsed documents
(query). Times are wall and process CPU (every thread); peak RSS is the process's.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

FILTER = "params.lr = '0.01' and metrics.loss.min < 0.05 and attributes.status = 'FINISHED'"


def make_runs(root: Path, count: int) -> None:
    """One real run document, then ``count`` copies in experiments of 500, each with its own run id, params
    and loss summary (the index reads the documents only, so no metric file is copied)."""
    import yprov4ml

    with tempfile.TemporaryDirectory() as tmp:
        yprov4ml.start_run("www.example.org", "bench", tmp, run_id="search-bench")
        yprov4ml.log_params({"lr": 0.01, "batch_size": 64, "optimizer": "adam", **{f"p{i}": i for i in range(7)}})
        for step in range(50):
            yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step)
            yprov4ml.log_metric("accuracy", step / 50, "validation", step)
        template = json.loads(yprov4ml.end_run().read_text())
    run_key = next(k for k, v in template["activity"].items() if "RunExecution" in json.dumps(v))
    param_keys = {v["yprov:key"]: k for k, v in template["entity"].items() if "yprov:Parameter" in json.dumps(v)}
    loss_key = next(k for k, v in template["entity"].items() if v.get("yprov:key") == "loss")
    for i in range(count):
        doc = copy.deepcopy(template)
        run_id = f"bench-{i:06d}"
        doc["activity"][run_key]["yprov:run_id"] = run_id
        doc["activity"][run_key]["yprov:status"] = "FAILED" if i % 10 == 0 else "FINISHED"
        doc["entity"][param_keys["lr"]]["yprov:value"] = {"$": str([0.1, 0.01, 0.001][i % 3]), "type": "xsd:double"}
        doc["entity"][loss_key]["yprov:min"] = {"$": str((i % 100) / 1000), "type": "xsd:double"}
        target = root / f"exp{i // 500}" / run_id / "prov.rank0.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc))


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    from yprov4ml.search.index import refresh
    from yprov4ml.search.query import query

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_runs(root, args.runs)
        files = sorted(root.glob("*/*/prov.rank0.json"))

        parse_wall, parse_cpu, docs = timed(lambda: [json.loads(p.read_bytes()) for p in files])
        cold_wall, cold_cpu, cold = timed(lambda: refresh(root))
        stat_wall, stat_cpu, _ = timed(lambda: [os.stat(os.path.join(d, f)) for d, _, names in os.walk(root)
                                                 for f in names])
        again_wall, again_cpu, again = timed(lambda: refresh(root))
        assert cold.read == args.runs and again.read == 0, (cold.summary(), again.summary())

        def scan() -> list[str]:  # the floor of a query: the documents already parsed, one Python pass
            found = []
            for doc in docs:
                run = next(v for v in doc["activity"].values() if "RunExecution" in json.dumps(v["prov:type"]))
                ents = doc["entity"].values()
                lr = next(e["yprov:value"]["$"] for e in ents if e.get("yprov:key") == "lr" and "yprov:value" in e)
                loss = next(float(e["yprov:min"]["$"]) for e in ents if e.get("yprov:key") == "loss")
                if lr == "0.01" and loss < 0.05 and run["yprov:status"] == "FINISHED":
                    found.append(run["yprov:run_id"])
            return found

        scans = [timed(scan) for _ in range(3)]
        queries = [timed(lambda: query(root, FILTER, ["metrics.loss.min"], None)) for _ in range(20)]
        expected = sorted(scans[0][2])
        assert sorted(s.run_id for s in queries[0][2]) == expected, "the index and the scan disagree"
        query_wall = statistics.median(q[0] for q in queries)
        query_cpu = statistics.median(q[1] for q in queries)
        scan_wall = statistics.median(s[0] for s in scans)
        index_mb = (root / ".yprov4ml" / "index.sqlite").stat().st_size / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.runs} runs ({len(expected)} match {FILTER!r}), index file {index_mb:.1f} MB, "
              f"peak RSS {peak:.0f} MB")
        print(f"cold index:      {cold_wall:7.3f} s wall, {cold_cpu:7.3f} s CPU; parsing every document alone "
              f"{parse_wall:.3f} s wall ({cold_wall / parse_wall:.2f}x)")
        print(f"re-index, none changed: {again_wall:7.3f} s wall, {again_cpu:7.3f} s CPU (target <= 1 s); walking and "
              f"stat-ing the tree alone {stat_wall:.3f} s ({again_wall / stat_wall:.2f}x)")
        print(f"filter query:    {query_wall * 1000:7.2f} ms wall median of 20 (max {max(q[0] for q in queries) * 1000:.2f}), "
              f"{query_cpu * 1000:.2f} ms CPU (target <= 50 ms); a Python scan of the parsed documents "
              f"{scan_wall * 1000:.2f} ms ({query_wall / scan_wall:.3f}x)")


if __name__ == "__main__":
    main()
