"""RDF that plain SPARQL understands: unqualified relations beside the qualified ones, every bundle a prov:Bundle,
Turtle files that load as Turtle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml

rdflib = pytest.importorskip("rdflib")

PREFIXES = "PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX yprov: <https://w3id.org/yprov4ml/ns#> "


def convert(source: Path, to: str, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "convert", str(source), "--to", to, "-o",
                           str(output)], capture_output=True, text=True, timeout=300)


def rows(graph, query: str) -> list:
    return list(graph.query(PREFIXES + query))


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("rdf")
    with yprov4ml.start_run("www.example.org", "rdf", base) as run:
        yprov4ml.log_param("lr", 0.1)
        (base / "data.csv").write_text("x\n1\n")
        yprov4ml.log_artifact(base / "data.csv", yprov4ml.Context.TRAINING, is_input=True)
        for step in range(3):
            yprov4ml.log_metric("loss", 1.0 / (step + 1), yprov4ml.Context.TRAINING, step)
            yprov4ml.log_metric("accuracy", 0.5, yprov4ml.Context.VALIDATION, step)
    return run.run_dir / "prov.rank0.json"


def _relations(document: dict, kind: str) -> int:
    return len(document.get(kind, {}))


def test_plain_sparql_finds_every_generation_and_usage(training_run, tmp_path):
    out = tmp_path / "run.ttl"
    assert convert(training_run, "turtle", out).returncode == 0
    graph = rdflib.Graph().parse(out, format="turtle")
    document = json.loads(training_run.read_text())
    generations = rows(graph, "SELECT DISTINCT ?e ?a WHERE { ?e prov:wasGeneratedBy ?a }")
    assert len(generations) == _relations(document, "wasGeneratedBy") > 0
    usages = rows(graph, "SELECT DISTINCT ?a ?e WHERE { ?a prov:used ?e }")
    assert len(usages) == _relations(document, "used") > 0
    # the qualified form is kept: its time is there, and it names the same activity
    timed = rows(graph, "SELECT ?e ?a ?t WHERE { ?e prov:qualifiedGeneration ?g . ?g prov:activity ?a ; "
                        "prov:atTime ?t . ?e prov:wasGeneratedBy ?a }")
    assert len(timed) == len(generations)
    series = rows(graph, "SELECT ?s WHERE { ?s a yprov:MetricSeries ; yprov:key 'loss' ; prov:wasGeneratedBy ?c }")
    assert len(series) == 1


@pytest.fixture(scope="module")
def workflow_bundle(tmp_path_factory):
    from yprov4wfs_bridge import Workflow, build

    base = tmp_path_factory.mktemp("wf")
    with Workflow("wf", directory=base / "wf") as wf:
        for task in ("prepare", "train"):
            with wf.task(task) as step:
                with yprov4ml.start_run("www.example.org", task, base / "prov"):
                    yprov4ml.log_metric("loss", 1.0, step=0)
                    if task == "train":  # the task's output file, which the run records as its artifact
                        (base / "weights.bin").write_bytes(b"weights")
                        yprov4ml.log_artifact(base / "weights.bin", yprov4ml.Context.TRAINING)
                if task == "train":
                    step.output("weights", base / "weights.bin")
    return build(base / "wf", crate=False, svg=False).bundle


def test_every_nested_run_is_a_prov_bundle_in_trig_and_nquads(workflow_bundle, tmp_path):
    for to, suffix in (("trig", ".trig"), ("nquads", ".nq")):
        out = tmp_path / f"bundle{suffix}"
        done = convert(workflow_bundle, to, out)
        assert done.returncode == 0, done.stderr
        dataset = rdflib.Dataset()
        dataset.parse(out, format=to)
        bundles = rows(dataset, "SELECT ?b WHERE { ?b a prov:Bundle , yprov:RunBundle }")
        assert len(bundles) == 2
        runs = rows(dataset, "SELECT ?b ?r WHERE { ?b a prov:Bundle . GRAPH ?b { ?r a yprov:RunExecution } }")
        assert len(runs) == 2  # each bundle's named graph holds its run
        tasks = rows(dataset, "SELECT ?b ?t WHERE { ?b a prov:Bundle ; prov:wasGeneratedBy ?t . ?t a yprov:Task }")
        assert len(tasks) == 2


def test_a_bundle_asked_as_turtle_goes_to_trig_or_is_refused(workflow_bundle, tmp_path):
    copy = tmp_path / "bundle.prov.json"
    copy.write_bytes(workflow_bundle.read_bytes())
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "convert", str(copy), "--to", "turtle"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("bundle.trig")
    refused = convert(copy, "turtle", tmp_path / "bundle.ttl")
    assert refused.returncode == 2 and "Turtle cannot hold" in refused.stderr and "--to trig" in refused.stderr
    assert not (tmp_path / "bundle.ttl").exists()


def test_documents_written_before_bundles_had_two_types_still_read(workflow_bundle, tmp_path):
    from yprov4wfs_bridge import read_bundle

    old = json.loads(workflow_bundle.read_text())
    for entity in old["entity"].values():
        if isinstance(entity.get("prov:type"), list):
            entity["prov:type"] = entity["prov:type"][1]  # as the bridge wrote them: yprov:RunBundle alone
    (tmp_path / "old.prov.json").write_text(json.dumps(old))
    for path in (workflow_bundle, tmp_path / "old.prov.json"):
        _, documents = read_bundle(path)
        assert sorted(d.run_id.split("-")[0] for d in documents) == ["prepare", "train"]


def test_a_task_reaches_the_runs_it_started_and_a_file_its_record_in_the_run(workflow_bundle, tmp_path):
    out = tmp_path / "bundle.trig"
    assert convert(workflow_bundle, "trig", out).returncode == 0
    dataset = rdflib.Dataset()
    dataset.parse(out, format="trig")
    # without walking into any bundle: the task informed the run activity it started
    ran = rows(dataset, "SELECT ?label ?run WHERE { ?run prov:wasInformedBy ?task . ?task a yprov:Task ; "
                        "rdfs:label ?label . GRAPH ?b { ?run a yprov:RunExecution } }".replace(
                            "SELECT", "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> SELECT"))
    assert sorted(str(label) for label, _ in ran) == ["prepare", "train"]
    started = rows(dataset, "SELECT ?run ?task WHERE { ?run prov:qualifiedStart ?s . ?s prov:hadActivity ?task . "
                            "?task a yprov:Task }")
    assert len(started) == 2
    same = rows(dataset, "SELECT ?file ?recorded WHERE { ?file prov:alternateOf ?recorded ; "
                         "prov:wasGeneratedBy ?task . GRAPH ?b { ?recorded a yprov:Artifact } }")
    assert len(same) == 1
    document = json.loads(workflow_bundle.read_text())
    inner = next(b for b in document["bundle"].values() if "train" in str(b.get("activity")))
    assert document["prefix"]["yrun"] == "https://w3id.org/yprov4ml/run/"
    assert any(k.startswith("run:rank-0") for k in inner["activity"])


def test_the_bundle_still_splits_into_the_same_documents(workflow_bundle):
    from yprov4wfs_bridge import read_bundle

    workflow, documents = read_bundle(workflow_bundle)
    assert "wasStartedBy" not in workflow and "alternateOf" not in workflow and "yrun" not in workflow["prefix"]
    for doc in documents:
        assert json.loads(doc.path.read_text()) == doc.data
