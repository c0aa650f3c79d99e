"""yprov4wfs_bridge: workflow API, runs attached three ways, the merged graph, the bundle, the crate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type
from yprov4wfs_bridge import Workflow, WorkflowError, build, build_graph, read_bundle, validate_crate
from yprov4wfs_bridge.runs import collect

from conftest import assert_valid_prov


def test_pipeline_bundle_is_valid_prov(pipeline):
    doc = assert_valid_prov(pipeline / "bundle.prov.json")
    assert_valid_prov(pipeline / "workflow.prov.json")
    tasks = {k for k, v in doc["activity"].items() if prov_type(v) == "yprov:Task"}
    assert tasks == {"wf:task/preprocess", "wf:task/train", "wf:task/evaluate"}
    bundles = {k: v for k, v in doc["entity"].items() if prov_type(v) == "yprov:RunBundle"}
    assert sorted(v["yprov:task_id"] for v in bundles.values()) == ["evaluate", "train", "train"]
    linked = {(r["prov:entity"], r["prov:activity"]) for r in doc["wasGeneratedBy"].values()}
    for identifier, attrs in bundles.items():
        assert (identifier, f"wf:task/{attrs['yprov:task_id']}") in linked  # each run bundle hangs off its task
        assert identifier in doc["bundle"]


def test_pipeline_graph_queries(pipeline):
    result = build(pipeline, crate=False, svg=False)
    graph = result.graph
    (train_run,) = graph.runs_of("train")
    assert graph.ranks_of(train_run) == [0, 1]
    assert graph.runs_of("preprocess") == []
    metrics = graph.metrics_of("train")
    assert {(m["label"], m["rank"]) for m in metrics} >= {("loss", 0), ("loss", 1), ("val_loss", 0)}
    task = graph.node_of("wf:task/train")
    loss_rank1 = next(m["node"] for m in metrics if m["label"] == "loss" and m["rank"] == 1)
    path = graph.path(task, loss_rank1)
    levels = [graph.graph.nodes[n]["level"] for n in path]
    assert levels[:3] == ["task", "run", "rank"]  # task → run → rank → ... → the loss series
    lineage = graph.lineage("model")
    assert {"wf:task/train", "wf:data/train_set", "wf:task/preprocess", "wf:data/raw"} <= set(lineage)
    assert "wf:data/test_set" not in lineage
    levels = {a["level"] for _, a in graph.graph.nodes(data=True)}
    assert levels == {"workflow", "task", "run", "rank"}


def test_reading_the_bundle_back_rebuilds_the_same_graph(pipeline):
    result = build(pipeline, crate=False, svg=False)
    workflow, documents = read_bundle(result.bundle)
    again = build_graph(workflow, documents)
    original = result.graph.graph
    assert set(again.nodes) == set(original.nodes)
    assert sorted((u, v, r) for u, v, r in again.edges(data="relation")) == \
        sorted((u, v, r) for u, v, r in original.edges(data="relation"))
    for node, attrs in original.nodes(data=True):
        assert again.nodes[node]["level"] == attrs["level"]


def test_pipeline_crate_passes_roc_validator(pipeline):
    report = validate_crate(pipeline / "crate")
    assert report.passed, report.issues
    meta = json.loads((pipeline / "crate" / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in meta["@graph"]}
    train = graph["#action-train"]
    tool = "https://w3id.org/yprov4wfs/workflow/regression-pipeline/tool/train"  # absolute, as ProcRC asks
    assert train["@type"] == "CreateAction" and train["instrument"] == {"@id": tool}
    assert graph[tool]["url"] and graph[tool]["softwareVersion"] == "1.0.0"
    usage = {graph[u["@id"]]["name"] for u in (train["resourceUsage"] if isinstance(train["resourceUsage"], list)
                                               else [train["resourceUsage"]])}
    assert "task_wall_time_s" in usage
    prov_files = [e for e in graph.values() if str(e.get("name", "")).startswith("PROV-JSON of run")]
    assert len(prov_files) == 3 and all((pipeline / "crate" / e["@id"]).is_file() for e in prov_files)
    assert any(e["@id"].endswith(".ymetric") for e in graph.values())
    assert any(e["@id"].endswith(".pt") and "/models/" in e["@id"] for e in graph.values())
    assert {"#control-preprocess", "#control-train", "#control-evaluate"} <= set(graph)


def test_a_deliberately_broken_crate_fails_validation(pipeline, tmp_path):
    import shutil

    broken = tmp_path / "crate"
    shutil.copytree(pipeline / "crate", broken)
    meta = json.loads((broken / "ro-crate-metadata.json").read_text())
    for entity in meta["@graph"]:  # a resourceUsage PropertyValue MUST have a propertyID
        entity.pop("propertyID", None)
    (broken / "ro-crate-metadata.json").write_text(json.dumps(meta))
    assert not validate_crate(broken).passed


def test_large_files_can_be_referenced_instead_of_copied(pipeline, tmp_path):
    from yprov4wfs_bridge.crate import CrateOptions

    result = build(pipeline, svg=False, crate_options=CrateOptions(reference_over_bytes=50_000))
    meta = json.loads((result.crate / "ro-crate-metadata.json").read_text())
    ids = {e["@id"] for e in meta["@graph"]}
    assert any(i.startswith("file://") and i.endswith("raw.pt") for i in ids)
    assert not (result.crate / "data" / "raw.pt").exists()
    build(pipeline, svg=False)  # put the copying crate back for the other tests


def _small_workflow(tmp_path: Path) -> Workflow:
    (tmp_path / "in.txt").write_text("input")
    return Workflow("small", directory=tmp_path / "wf")


def test_task_and_workflow_record_status_and_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with _small_workflow(tmp_path) as wf:
            with wf.task("ok") as task:
                (tmp_path / "out.txt").write_text("out")
                task.output("out", tmp_path / "out.txt")
            with wf.task("boom"):
                raise RuntimeError("disk on fire")
    manifest = json.loads((tmp_path / "wf" / "workflow.json").read_text())
    status = {t["id"]: (t["status"], t["error"]) for t in manifest["tasks"]}
    assert status["ok"] == ("FINISHED", None)
    assert status["boom"][0] == "FAILED" and "disk on fire" in status["boom"][1]
    assert manifest["status"] == "FAILED"
    doc = assert_valid_prov(tmp_path / "wf" / "workflow.prov.json")
    assert doc["entity"]["wf:data/out"]["yprov:sha256"]
    assert os.environ.get("YPROV4WFS_TASK_ID") is None  # the task's identity left the environment with it


def test_workflow_level_prov_needs_no_torch(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from yprov4wfs_bridge import Workflow\n"
            f"with Workflow('notorch', directory={str(tmp_path / 'wf')!r}) as wf:\n"
            "    with wf.task('a'): pass\n"
            "print('torch' in sys.modules and sys.modules['torch'] is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert_valid_prov(tmp_path / "wf" / "workflow.prov.json")


def test_a_run_in_the_task_attaches_itself_and_one_attached_after_the_fact(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    with yprov4ml.start_run("www.example.org", "before", elsewhere) as earlier:
        yprov4ml.log_metric("loss", 3.0)
    with _small_workflow(tmp_path) as wf:
        with wf.task("train") as task:
            with yprov4ml.start_run("www.example.org", "inside", tmp_path / "prov") as run:
                yprov4ml.log_metric("loss", 1.0)
            task.attach(earlier.run_dir)
    view = yprov4ml.load_run(run.run_dir)
    assert view.run["parent_task_id"] == "train" and view.run["parent_workflow_id"] == "small"
    result = build(tmp_path / "wf", svg=False)
    assert sorted(result.graph.runs_of("train")) == sorted([run.run_id, earlier.run_id])
    assert result.gaps == []
    assert validate_crate(result.crate).passed


BAD = [
    ("duplicate task id", lambda wf, tmp: (wf.task("t"), wf.task("t")), "task ids must be unique"),
    ("missing data path", lambda wf, tmp: wf.data("d", tmp / "nope.csv"), "does not exist"),
    ("output never written", lambda wf, tmp: wf.task("t2").output("o", tmp / "never.bin"), "does not exist"),
    ("attach a non-PROV file", lambda wf, tmp: wf.task("t3").attach(tmp / "in.txt"), "not valid JSON|invalid JSON"),
    ("attach nothing", lambda wf, tmp: wf.task("t4").attach(tmp / "nothing"), "does not exist"),
    ("attach a non-run directory", lambda wf, tmp: wf.task("t5").attach(tmp), "no prov.rank"),
    ("bad task id", lambda wf, tmp: wf.task("a b"), "letters, digits"),
    ("end before start", lambda wf, tmp: wf.task("t6").end(), "before it started"),
]


@pytest.mark.parametrize("name,call,pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_error(tmp_path, name, call, pattern):
    wf = _small_workflow(tmp_path)
    with pytest.raises(WorkflowError, match=pattern):
        call(wf, tmp_path)


def test_gaps_are_recorded_not_hidden(tmp_path):
    wf = _small_workflow(tmp_path)
    with wf:
        task = wf.task("never_ends")
        task.start()
        run = yprov4ml.start_run("www.example.org", "dies", tmp_path / "prov", collect_all_processes=True, rank=0,
                                 run_id="partial")
        yprov4ml.log_metric("loss", 1.0)
        # the run is abandoned (as if killed): no end_run
        yprov4ml.state.release(run)  # forgotten, as a killed process would leave it
        run.journal.close()
        os.environ.pop("YPROV4WFS_TASK_ID")
    result = build(tmp_path / "wf", svg=False)
    assert any("never_ends never ended" in g for g in result.gaps)
    assert any("never ended and has no document" in g and "yprov4ml recover" in g for g in result.gaps)
    doc = assert_valid_prov(result.bundle)
    assert "never_ends" in doc["activity"]["wf:workflow"]["yprov:gaps"]
    meta = json.loads((result.crate / "ro-crate-metadata.json").read_text())
    run_action = next(e for e in meta["@graph"] if e["@id"] == "#workflow-run")
    assert "Recorded gaps" in run_action["description"]
    from yprov4ml.tools.recover import recover

    recover(run.run_dir)  # once recovered, the run's record joins the bundle
    assert collect(tmp_path / "wf", json.loads((tmp_path / "wf" / "workflow.json").read_text())).documents


def test_a_rank_without_its_registered_document_is_a_gap(tmp_path):
    with _small_workflow(tmp_path) as wf:
        with wf.task("train"):
            for rank in (0, 1):
                with yprov4ml.start_run("www.example.org", "multi", tmp_path / "prov", collect_all_processes=True,
                                        rank=rank, world_size=2, run_id="two-ranks", collection_timeout_s=0.1) as run:
                    yprov4ml.log_metric("loss", float(rank))
    (run.run_dir / "prov.rank1.json").unlink()
    result = build(tmp_path / "wf", svg=False)
    assert any("prov.rank1.json is missing" in g for g in result.gaps), result.gaps
    assert [d.rank for d in result.attachments.documents] == [0]


def test_bridge_cli(pipeline):
    done = subprocess.run([sys.executable, "-m", "yprov4wfs_bridge.cli", "build", str(pipeline), "--json",
                           "--validate", "--no-svg"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "yprov4wfs_bridge.cli", "build", str(pipeline.parent / "nowhere")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a workflow directory" in bad.stderr


def test_a_run_directory_lacking_rank_documents_is_a_gap(tmp_path):
    """Ranks that never registered (died before start_run) are found missing from the world size."""
    with _small_workflow(tmp_path) as wf:
        with wf.task("train"):
            os.environ.update({"SLURM_PROCID": "0", "SLURM_NTASKS": "3", "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"})
            try:
                with yprov4ml.start_run("www.example.org", "multi", tmp_path / "prov", collect_all_processes=True,
                                        collection_timeout_s=0.1):
                    yprov4ml.log_metric("loss", 1.0)
            finally:
                for key in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID"):
                    os.environ.pop(key)
    result = build(tmp_path / "wf", svg=False)
    assert any("missing the documents of ranks [1, 2] (of 3)" in g for g in result.gaps), result.gaps


def test_a_rerun_into_the_same_directory_attaches_only_its_own_runs(tmp_path):
    def execution(loss: float) -> str:
        with Workflow("again", directory=tmp_path / "wf") as wf:
            with wf.task("train"):
                with yprov4ml.start_run("www.example.org", "again", tmp_path / "prov") as run:
                    yprov4ml.log_metric("loss", loss)
        return run.run_id

    first = execution(1.0)
    second = execution(0.5)
    result = build(tmp_path / "wf", svg=False)
    assert [d.run_id for d in result.attachments.documents] == [second]
    assert first not in result.bundle.read_text()
    assert not result.gaps


def test_the_bundle_types_its_records_as_qualified_names(pipeline):
    def types(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "prov:type":  # one type, or several (a bundle: prov:Bundle and yprov:RunBundle)
                    yield from value if isinstance(value, list) else [value]
                else:
                    yield from types(value)

    found = list(types(json.loads((pipeline / "bundle.prov.json").read_text())))
    assert len(found) > 20 and all(isinstance(t, dict) and t["type"] == "xsd:QName" for t in found)


def test_crate_paths_keep_the_run_id(pipeline):
    runs = {p.name for p in (pipeline / "crate" / "runs" / "train").iterdir()}
    ids = {json.loads(line)["run_id"] for line in (pipeline / "runs.jsonl").read_text().splitlines()}
    assert runs and runs <= ids  # runs/<task>/<run id>/: the id itself, no hash added to it
