"""CWL workflows run by a real cwltool (in an environment of its own: it pins prov 1.5.1), recorded at both levels
by yprov4wfs_bridge.managers.cwl: the example pipeline trains a torch model whose yprov4ml run nests under its
step; a failing step fails with cwltool's own words and the step after it is recorded as not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_valid_prov
from yprov4wfs_bridge.cli import main as bridge_main
from yprov4wfs_bridge.bundle import read_bundle

ROOT = Path(__file__).resolve().parent.parent
RUN_SH = ROOT / "examples" / "cwl" / "run.sh"
CWLTOOL_RELEASE = "cwltool==3.3.20260925135507"
LOCAL_CWLTOOL = "YPROV4ML_TEST_CWLTOOL"  # a cwltool already installed elsewhere: no venv is built


@pytest.fixture(scope="module")
def cwltool(tmp_path_factory) -> Path:
    """cwltool in a virtual environment of its own, as the docs tell a user to install it."""
    if os.environ.get(LOCAL_CWLTOOL):
        return Path(os.environ[LOCAL_CWLTOOL])
    venv = tmp_path_factory.mktemp("cwltool-env")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", CWLTOOL_RELEASE],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin" / "cwltool"


def _example(out: Path, cwltool: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CWLTOOL": str(cwltool), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([str(RUN_SH), str(out), *args], capture_output=True, text=True, timeout=600, env=env)


def _tasks(workflow_dir: Path) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads((workflow_dir / "workflow.json").read_text())["tasks"]}


def _registered(workflow_dir: Path) -> dict[str, str]:
    """run id → the task its run registered under (from the run's own environment)."""
    lines = [json.loads(line) for line in (workflow_dir / "runs.jsonl").read_text().splitlines()]
    return {line["run_id"]: line["task_id"] for line in lines}


def test_the_cwl_pipeline_is_recorded_at_both_levels_with_its_training_run_nested(tmp_path, cwltool):
    done = _example(tmp_path, cwltool, "2")
    assert done.returncode == 0, done.stderr[-4000:]
    record = tmp_path / "provenance"
    tasks = _tasks(record)
    assert list(tasks) == ["make_data", "train", "evaluate"]
    assert all(t["status"] == "FINISHED" and t["attempts"][0]["host"] for t in tasks.values())
    assert tasks["train"]["depends_on"] == ["make_data"] and tasks["evaluate"]["depends_on"] == ["make_data", "train"]
    assert "distributed_train.py --data" in tasks["train"]["command"]
    manifest = json.loads((record / "workflow.json").read_text())
    data = {d["id"]: d for d in manifest["data"]}
    model = Path(json.loads((record / "cwl_outputs.json").read_text())["model"]["path"])
    final = next(d for d in data.values() if d["path"] == str(model))  # the output cwltool moved to --outdir
    assert final["generated_by"] == "train" and final["size"] == model.stat().st_size and len(final["sha256"]) == 64
    assert sorted(_registered(record).values()) == ["evaluate", "train"]  # each run named its step itself

    assert_valid_prov(record / "bundle.prov.json")  # every term it uses, cwltool's facts too, in the vocabulary
    _, documents = read_bundle(record / "bundle.prov.json")  # the multi-level bundle: each run under its step
    assert sorted((d.task_id, d.rank) for d in documents) == [("evaluate", 0), ("train", 0)]
    crate = json.loads((record / "crate" / "ro-crate-metadata.json").read_text())["@graph"]
    by_id = {e["@id"]: e for e in crate}
    main = by_id[by_id["./"]["mainEntity"]["@id"]]
    assert main["@id"] == "workflow/pipeline.cwl" and "ComputationalWorkflow" in main["@type"]
    assert by_id[main["programmingLanguage"]["@id"]]["name"] == "Common Workflow Language"
    assert by_id[main["programmingLanguage"]["@id"]]["version"] == "v1.2"
    assert (tmp_path / "provenance" / "crate" / "workflow" / "train.cwl").read_text() == \
        (ROOT / "examples" / "cwl" / "train.cwl").read_text()  # the step documents beside it, where `run:` finds them
    assert by_id["workflow/train.cwl"]["isPartOf"] == {"@id": "workflow/pipeline.cwl"}
    assert main["image"] == {"@id": "graph.svg"} and "ImageObject" in by_id["graph.svg"]["@type"]
    assert by_id["workflow.json"]["about"] == {"@id": "#workflow-run"}
    readme = (record / "crate" / "README.md").read_text()
    assert "status **FINISHED**; 3 task(s): 3 finished; run by cwltool" in readme and "\n\n\n" not in readme
    for profile in ("provenance-run-crate-0.5", "workflow-ro-crate-1.0"):
        assert bridge_main(["validate-crate", str(record / "crate"), "--severity", "RECOMMENDED",
                            "--profile", profile]) == 0


def test_a_failing_cwl_step_fails_with_cwltools_words_and_a_rerun_records_a_new_execution(tmp_path, cwltool):
    failed = _example(tmp_path, cwltool, "2", "0")  # the training step raises in its second epoch
    assert failed.returncode == 1
    record = tmp_path / "provenance"
    manifest = json.loads((record / "workflow.json").read_text())
    tasks = _tasks(record)
    assert manifest["status"] == "FAILED" and "failed: train" in manifest["error"]
    assert tasks["train"]["status"] == "FAILED" and "exited with status: 1" in tasks["train"]["error"]
    assert tasks["evaluate"]["status"] == "NOT_RUN" and tasks["make_data"]["status"] == "FINISHED"
    assert list(_registered(record).values()) == ["train"]  # the failed run still nests under its step
    crate = {e["@id"]: e for e in json.loads((record / "crate" / "ro-crate-metadata.json").read_text())["@graph"]}
    assert crate["#control-train"]["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert "exited with status: 1" in crate["#control-train"]["error"]
    assert "cwltool exited with 1" in crate["#organize"]["error"]
    first = manifest["execution_id"]

    again = _example(tmp_path, cwltool, "2")  # CWL has no retries: the user runs it again, into the same place
    assert again.returncode == 0, again.stderr[-4000:]
    manifest = json.loads((record / "workflow.json").read_text())
    assert manifest["execution_id"] != first and manifest["status"] == "FINISHED"
    assert {t["status"] for t in _tasks(record).values()} == {"FINISHED"}


def test_cwltool_not_installed_or_not_cwltool_is_refused_with_how_to_install_it(tmp_path, capsys):
    (tmp_path / "wf.cwl").write_text("cwlVersion: v1.2\nclass: Workflow\ninputs: {}\noutputs: {}\nsteps: {}\n")
    not_python = tmp_path / "cwltool"
    not_python.write_text("#!/bin/sh\necho hi\n")
    not_python.chmod(0o755)
    for given in (tmp_path / "absent", not_python):
        assert bridge_main(["cwl", str(tmp_path / "wf.cwl"), "--directory", str(tmp_path / "out"),
                            "--cwltool", str(given)]) == 2
        err = capsys.readouterr().err
        assert "pipx install cwltool" in err and "prov 1.5.1" in err
    assert not (tmp_path / "out" / "events.jsonl").exists()  # nothing half-recorded
