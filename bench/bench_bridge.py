"""Bridge benchmark: merged graph, multi-level bundle and RO-Crate for 10 and 100 tasks of 8 ranks each.

    python bench/bench_bridge.py

Synthetic but realistic rank documents (the ones bench_distributed.py makes: 20 metric series,
10 params, 5 artifacts), registered under each task as yprov4ml runs register themselves.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_worker, table  # noqa: E402

RANKS = 8


def make_workflow(directory: Path, tasks: int) -> None:
    from bench_distributed import make_rank_documents

    from yprov4wfs_bridge import Workflow

    template = directory / "template"
    make_rank_documents(template, RANKS)
    registry = []
    with Workflow("bench", directory=directory) as wf:
        for t in range(tasks):
            with wf.task(f"task{t:03d}"):
                run_dir = directory / "prov" / f"run{t:03d}"
                shutil.copytree(template, run_dir)
                for rank in range(RANKS):
                    prov = run_dir / f"prov.rank{rank}.json"
                    text = prov.read_text().replace("merge-bench", f"bench-run-{t:03d}")
                    prov.write_text(text)
                    registry.append({"event": "end", "task_id": f"task{t:03d}", "run_id": f"bench-run-{t:03d}",
                                     "rank": rank, "run_dir": str(run_dir), "prov_path": str(prov)})
    (directory / "runs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in registry))
    shutil.rmtree(template)


def worker(directory: str) -> None:
    from yprov4wfs_bridge.bundle import write_bundle
    from yprov4wfs_bridge.crate import build_crate
    from yprov4wfs_bridge.graph import build_graph
    from yprov4wfs_bridge.outputs import load_manifest
    from yprov4wfs_bridge.provwf import workflow_document
    from yprov4wfs_bridge.runs import collect

    root = Path(directory)
    timings = {}
    t0 = time.perf_counter()
    manifest = load_manifest(root)
    attachments = collect(root, manifest)
    workflow = workflow_document(manifest)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = build_graph(workflow, attachments.documents)
    timings["graph_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bundle = write_bundle(root / "bundle.prov.json", workflow, attachments.documents)
    timings["bundle_s"] = time.perf_counter() - t0
    (root / "workflow.prov.json").write_text(json.dumps(workflow))
    t0 = time.perf_counter()
    build_crate(root / "crate", root, manifest, attachments.documents,
                {"workflow": root / "workflow.prov.json", "bundle": bundle}, [])
    timings["crate_s"] = time.perf_counter() - t0
    print(json.dumps({"tasks": len(manifest["tasks"]), "rank_docs": len(attachments.documents),
                      "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
                      **{k: round(v, 2) for k, v in timings.items()},
                      "bundle_mb": round(bundle.stat().st_size / 2**20, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    rows = []
    for tasks in (10, 100):
        with tempfile.TemporaryDirectory() as tmp:
            make_workflow(Path(tmp), tasks)
            rows.append(run_worker(__file__, "--worker", tmp))
    print(table(rows, [("tasks", "tasks"), ("rank_docs", "rank docs"), ("nodes", "graph nodes"),
                       ("edges", "edges"), ("load_s", "load s"), ("graph_s", "graph s"), ("bundle_s", "bundle s"),
                       ("crate_s", "crate s"), ("bundle_mb", "bundle MB"), ("peak_rss_mb", "peak RSS MB")]))
    small, big = rows
    total = lambda r: r["load_s"] + r["graph_s"] + r["bundle_s"] + r["crate_s"]  # noqa: E731
    print(f"growth from 10 to 100 tasks: x{total(big) / total(small):.1f} time for x10 tasks")


if __name__ == "__main__":
    main()
