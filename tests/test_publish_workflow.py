"""The example pipeline's publication outputs: a crate clean at RECOMMENDED, and a picture that can be read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from yprov4ml.publish.crate_check import seed_validator_cache, validate_crate
from yprov4ml.publish.metadata import PublicationMetadata
from yprov4wfs_bridge import build

from conftest import ROOT

METADATA = ROOT / "examples" / "yprov4ml.toml"
PROFILES = ("provenance-run-crate-0.5", "workflow-ro-crate-1.0")


def bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4wfs_bridge.cli", *args], capture_output=True, text=True,
                          timeout=300)


def roc_validator(crate, profile: str, cache, *extra: str) -> dict:
    """roc-validator's own command line, offline, at RECOMMENDED; its JSON report."""
    done = subprocess.run([shutil.which("rocrate-validator") or "rocrate-validator", "validate", "--offline",
                           "--cache-path", str(cache), "-p", profile, "-l", "recommended", "-f", "json", *extra,
                           str(crate)], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    report = json.loads(done.stdout)
    assert (done.returncode == 0) == report["passed"]
    return report


def test_the_workflow_crate_is_clean_at_recommended_for_both_profiles(pipeline, tmp_path):
    result = build(pipeline, svg=False, metadata=METADATA)
    cache = tmp_path / "http-cache"
    seed_validator_cache(cache)
    assert roc_validator(result.crate, "workflow-ro-crate-1.0", cache)["issues"] == []
    # roc-validator wants every ComputationalWorkflow to have an http(s) id, while Workflow RO-Crate wants the
    # main workflow to be a file of the crate (its issue #51): that one check is the only one that fails, on
    # workflow.json alone; every other RECOMMENDED check of provenance-run-crate-0.5 passes.
    full = roc_validator(result.crate, "provenance-run-crate-0.5", cache)
    assert {(i["check"]["identifier"], i["violatingPropertyValue"].rsplit("/", 1)[-1]) for i in full["issues"]} \
        == {("process-run-crate-0.5_5.1", "workflow.json")}
    assert roc_validator(result.crate, "provenance-run-crate-0.5", cache,
                         "--skip-checks", "process-run-crate-0.5_5.1")["issues"] == []
    for profile in PROFILES:
        report = validate_crate(result.crate, "RECOMMENDED", profile)
        assert report.passed and not report.missing_metadata, report.issues
    done = bridge("validate-crate", str(result.crate), "--severity", "RECOMMENDED")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(f"valid {p} at RECOMMENDED" in done.stdout for p in PROFILES) and "NOT valid" not in done.stdout


def test_the_crate_says_who_made_it_and_holds_readme_and_model_card(pipeline):
    result = build(pipeline, svg=False, metadata=METADATA)
    graph = {e["@id"]: e for e in json.loads((result.crate / "ro-crate-metadata.json").read_text())["@graph"]}
    root = graph["./"]
    author = graph[root["author"]["@id"]]
    assert root["author"] == {"@id": "https://orcid.org/0000-0002-1825-0097"}
    assert graph[author["affiliation"]["@id"]]["@type"] == "Organization"
    assert graph[root["publisher"]["@id"]] == {"@id": "https://www.example.org", "@type": "Organization",
                                               "name": "Example Research Institute", "url": "https://www.example.org"}
    assert root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"} and root["version"] == "1.0.0"
    assert graph["README.md"]["about"] == {"@id": "./"} and graph["README.md"]["encodingFormat"] == "text/markdown"
    assert "| train | FINISHED |" in (result.crate / "README.md").read_text()
    cards = [i for i in graph if i.endswith("/model_card.md")]
    assert len(cards) == 1 and cards[0].startswith("runs/train/")  # the training script asked for one
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", e[k])
               for e in graph.values() for k in ("startTime", "endTime") if k in e)


def test_without_metadata_the_crate_is_valid_and_says_what_would_make_it_clean(pipeline, tmp_path):
    result = build(pipeline, svg=False, metadata=PublicationMetadata())
    for profile in PROFILES:
        assert validate_crate(result.crate, "REQUIRED", profile).passed
    done = bridge("validate-crate", str(result.crate), "--severity", "RECOMMENDED", "--json")
    reports = [json.loads(part) for part in re.split(r"(?<=\})\n(?=\{)", done.stdout.strip())]
    assert done.returncode == 1 and {r["profile"] for r in reports} == set(PROFILES)
    missing = " ".join(reports[0]["missing_metadata"])
    assert "license" in missing and "publisher" in missing and "authors" in missing
    build(pipeline, svg=False, metadata=METADATA)  # put the published crate back for the other tests


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot draws the SVG")
def test_the_pipeline_picture_nests_its_levels_and_fits_2000_px(pipeline):
    import pydot

    result = build(pipeline, crate=False)
    svg = result.picture.read_text()
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert max(width, height) * 96 / 72 <= 2000, (width, height)  # points at 100 % on a 96-dpi screen

    (dot,) = pydot.graph_from_dot_file(str(pipeline / "graph.dot"))

    def clusters(graph) -> dict:
        return {s.get_label().strip('"'): s for s in graph.get_subgraphs()}

    (workflow,) = clusters(dot).values()
    tasks = clusters(workflow)
    assert set(tasks) == {"task preprocess", "task train", "task evaluate"}
    (run,) = clusters(tasks["task train"]).values()
    assert run.get_label().strip('"').startswith("run train-")
    ranks = clusters(run)
    assert set(ranks) == {"rank 0", "rank 1"}
    labels = [n.get_label() or "" for n in ranks["rank 0"].get_nodes()]
    assert any("loss (" in label and "process_cpu_percent" in label for label in labels)  # folded per context
    assert any("lr = 0.05" in label for label in labels)  # parameters folded into the rank's activity
    assert all(float(n.get("fontsize")) >= 10 for n in ranks["rank 0"].get_nodes())

    expanded = build(pipeline, crate=False, expand_metrics=True)
    (dot,) = pydot.graph_from_dot_file(str(expanded.picture.with_suffix(".dot")))
    rank0 = clusters(clusters(clusters(clusters(dot)["workflow regression-pipeline"])["task train"])[
        run.get_label().strip('"')])["rank 0"]
    series = [n.get_label() for n in rank0.get_nodes() if "pts)" in (n.get_label() or "")]
    assert any(s.startswith('"loss (training') for s in series) and len(series) >= 8  # one node per series
    build(pipeline, crate=False)
