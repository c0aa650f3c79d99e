"""Bridge benchmark: merged graph, multi-level bundle, picture and RO-Crate (and its validation) for 10 and
100 tasks of 8 ranks each — every step that ``yprov4wfs-bridge build --validate`` takes.

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
from _util import machine, run_worker, table  # noqa: E402

RANKS = 8


def make_workflow(directory: Path, tasks: int) -> None:
    from bench_distributed import make_rank_documents

    from yprov4wfs_bridge import Workflow

    template = directory / "template"
    make_rank_documents(template, RANKS)
    registry = []
    with Workflow("bench", directory=directory) as wf:
        execution = wf.execution_id  # runs register under their workflow's execution
        for t in range(tasks):
            with wf.task(f"task{t:03d}"):
                run_dir = directory / "prov" / f"run{t:03d}"
                shutil.copytree(template, run_dir)
                for rank in range(RANKS):
                    prov = run_dir / f"prov.rank{rank}.json"
                    text = prov.read_text().replace("merge-bench", f"bench-run-{t:03d}")
                    prov.write_text(text)
                    registry.append({"event": "end", "task_id": f"task{t:03d}", "execution_id": execution,
                                     "run_id": f"bench-run-{t:03d}", "rank": rank, "run_dir": str(run_dir),
                                     "prov_path": str(prov)})
    (directory / "runs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in registry))
    shutil.rmtree(template)


def worker(directory: str) -> None:
    from yprov4ml.publish.crate_check import validate_crate
    from yprov4wfs_bridge.bundle import write_bundle
    from yprov4wfs_bridge.crate import build_crate
    from yprov4wfs_bridge.graph import build_graph, multi_level_picture
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
    picture = multi_level_picture(workflow, attachments.documents).write(root / "graph.dot", svg=True)
    timings["picture_s"] = time.perf_counter() - t0  # DOT, and SVG through Graphviz
    t0 = time.perf_counter()
    build_crate(root / "crate", root, manifest, attachments.documents,
                {"workflow": root / "workflow.prov.json", "bundle": bundle}, [])
    timings["crate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = validate_crate(root / "crate")
    timings["validate_s"] = time.perf_counter() - t0
    print(json.dumps({"tasks": len(manifest["tasks"]), "rank_docs": len(attachments.documents),
                      "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
                      **{k: round(v, 2) for k, v in timings.items()}, "svg": picture.suffix == ".svg",
                      "valid": report.passed,
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
    print(f"machine: {machine()}")
    print(table(rows, [("tasks", "tasks"), ("rank_docs", "rank docs"), ("nodes", "graph nodes"),
                       ("edges", "edges"), ("load_s", "load s"), ("graph_s", "graph s"), ("bundle_s", "bundle s"),
                       ("picture_s", "picture s"), ("crate_s", "crate s"), ("validate_s", "validate s"),
                       ("valid", "valid"), ("bundle_mb", "bundle MB"), ("peak_rss_mb", "peak RSS MB")]))
    small, big = rows
    total = lambda r: sum(r[k] for k in ("load_s", "graph_s", "bundle_s", "picture_s", "crate_s",  # noqa: E731
                                         "validate_s"))
    print(f"growth from 10 to 100 tasks: x{total(big) / total(small):.1f} time for x10 tasks")


if __name__ == "__main__":
    main()
