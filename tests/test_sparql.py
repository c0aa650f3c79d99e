"""The questions a user asks of the record, in SPARQL over `yprov4ml convert --to trig`: a Snakemake workflow
whose training task ran a 2-rank run, and a 4-rank MPI run merged; and the yprov: vocabulary that types them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, USER_ATTRIBUTE_NAMES, assert_valid_prov
from yprov4ml.prov.vocabulary import defined_terms, undefined_terms, used_terms, vocabulary_text

rdflib = pytest.importorskip("rdflib")

BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
PREFIXES = ("PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX yprov: <https://w3id.org/yprov4ml/ns#> "
            "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> PREFIX owl: <http://www.w3.org/2002/07/owl#> "
            "PREFIX schema: <https://schema.org/> ")
VOCABULARY_GRAPH = rdflib.URIRef("https://w3id.org/yprov4ml/ns")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          timeout=300)


def _as_rdf(document: Path) -> rdflib.Dataset:
    """The document as TriG through the CLI, with the vocabulary (from `convert --vocabulary`) as a named graph."""
    trig = document.with_suffix(".trig")
    done = _cli("convert", str(document), "--to", "trig", "-o", str(trig))
    assert done.returncode == 0, done.stderr
    dataset = rdflib.Dataset()
    dataset.parse(trig, format="trig")
    vocabulary = _cli("convert", "--vocabulary")
    assert vocabulary.returncode == 0, vocabulary.stderr
    dataset.graph(VOCABULARY_GRAPH).parse(data=vocabulary.stdout, format="turtle")
    return dataset


def _rows(dataset: rdflib.Dataset, query: str) -> set[tuple[str, ...]]:
    return {tuple(str(value) for value in row) for row in dataset.query(PREFIXES + query)}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> tuple[Path, rdflib.Dataset]:
    """examples/snakemake: make_data → preprocess → train (mpiexec -n 2, a yprov4ml run) → evaluate (a run)."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich mpi4py)")
    workdir = tmp_path_factory.mktemp("sparql-snakemake")
    done = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "examples" / "snakemake" / "Snakefile"),
                           "-d", str(workdir), "--cores", "2", "--logger", "yprov4wfs",
                           "--logger-yprov4wfs-directory", str(workdir / "provenance")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    bundle = workdir / "provenance" / "bundle.prov.json"
    assert_valid_prov(bundle)
    return workdir, _as_rdf(bundle)


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory) -> tuple[Path, rdflib.Dataset]:
    """examples/distributed_train.py under a real `mpiexec -n 4`, with energy, merged."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install mpich mpi4py)")
    cwd = tmp_path_factory.mktemp("sparql-mpi")
    done = subprocess.run([MPIEXEC, "-n", "4", sys.executable, str(ROOT / "examples" / "distributed_train.py"),
                           "--epochs", "2", "--samples", "256", "--energy"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (cwd / "prov" / "distributed").iterdir()
    merged = cwd / "merged.json"
    assert _cli("merge", str(run_dir), "-o", str(merged)).returncode == 0
    assert_valid_prov(merged)
    return run_dir, _as_rdf(merged)


def test_which_model_came_from_which_task(workflow):
    workdir, dataset = workflow
    found = _rows(dataset, """
        SELECT ?task ?location ?sha WHERE {
            ?task a yprov:Task ; yprov:rule 'train' .
            ?run prov:wasInformedBy ?task .
            GRAPH ?g { ?run a yprov:RunExecution .
                       ?model a yprov:ModelVersion ; prov:wasGeneratedBy/prov:wasInformedBy? ?run ;
                              prov:atLocation ?location ; yprov:sha256 ?sha } }""")
    (run_dir,) = (workdir / "prov" / "train").iterdir()
    expected = {f"models/rank{r}/regressor.v{v}.pt" for r in (0, 1) for v in (1, 2)}
    assert {location for _, location, _ in found} == expected | {"models/rank0/regressor_final.v1.pt"}
    assert len({task for task, _, _ in found}) == 1  # the one train job
    import hashlib
    for _, location, sha in found:
        assert hashlib.sha256((run_dir / location).read_bytes()).hexdigest() == sha
    # no other task's run made a model
    assert not _rows(dataset, """SELECT ?task WHERE { ?task a yprov:Task . FILTER NOT EXISTS { ?task yprov:rule 'train' }
        ?run prov:wasInformedBy ?task . GRAPH ?g { ?m a yprov:ModelVersion ; prov:wasGeneratedBy/prov:wasInformedBy? ?run } }""")


def test_which_dataset_each_model_was_trained_on(workflow):
    _, dataset = workflow
    found = _rows(dataset, """
        SELECT ?rank ?model ?data WHERE { GRAPH ?g {
            ?model a yprov:ModelVersion ; prov:wasGeneratedBy/prov:wasInformedBy? ?run .
            ?run a yprov:RunExecution ; yprov:rank ?rank ; prov:used ?data . ?data a yprov:Dataset } }""")
    assert len(found) == 5  # v1 and v2 on each rank, and rank 0's final model
    assert all(data.endswith(f"/rank-{rank}/dataset/shard_{rank}") for rank, _, data in found)


def test_which_workflow_file_holds_the_bytes_a_run_recorded(workflow):
    _, dataset = workflow
    found = _rows(dataset, """SELECT ?path ?record WHERE { ?file a yprov:Data ; prov:atLocation ?path ;
        prov:alternateOf ?record . GRAPH ?g { ?record yprov:sha256 ?sha } ?file yprov:sha256 ?sha }""")
    paths = {Path(path).name for path, _ in found}
    assert {"train.pt", "test.pt"} <= paths  # preprocess's outputs, which the training and evaluation runs used


def test_who_ran_the_workflow_and_its_runs(workflow):
    _, dataset = workflow
    import getpass
    people = _rows(dataset, "SELECT DISTINCT ?label WHERE { GRAPH ?g { ?run a yprov:RunExecution ; "
                            "prov:wasAssociatedWith ?who . ?who a prov:Person ; rdfs:label ?label } }")
    assert people == {(getpass.getuser(),)}
    runs = _rows(dataset, "SELECT DISTINCT ?run WHERE { GRAPH ?g { ?run a yprov:RunExecution } }")
    assert len(runs) == 3  # the training run's two ranks and the evaluation run
    bundles = _rows(dataset, "SELECT ?b WHERE { ?b a prov:Bundle , yprov:RunBundle }")
    assert len(bundles) == 3


def test_energy_per_rank_of_a_four_rank_run(mpi_run):
    run_dir, dataset = mpi_run
    found = sorted(_rows(dataset, """
        SELECT ?rank ?kwh ?measured_by WHERE { GRAPH ?g { ?r a yprov:RunExecution ; yprov:rank ?rank .
            OPTIONAL { ?r yprov:total_energy_consumed_kwh ?kwh } OPTIONAL { ?r yprov:energy_measured_by ?measured_by } } }"""))
    assert [int(rank) for rank, _, _ in found] == [0, 1, 2, 3]
    # one host: its local rank 0 measures the node, the others say who did
    assert float(found[0][1]) > 0
    assert all(kwh == "None" and by == "local rank 0 of this node" for _, kwh, by in found[1:])
    (total,) = _rows(dataset, "SELECT ?kwh WHERE { ?job a yprov:DistributedRun ; yprov:total_energy_consumed_kwh ?kwh }")
    assert float(total[0]) == pytest.approx(float(found[0][1]))
    assert len(_rows(dataset, "SELECT ?b WHERE { ?b a prov:Bundle }")) == 4


def test_the_vocabulary_lets_plain_sparql_find_every_entity_and_activity(mpi_run):
    run_dir, dataset = mpi_run
    typed = _rows(dataset, "SELECT DISTINCT ?t WHERE { GRAPH ?g { ?x a ?t } "
                           "FILTER(STRSTARTS(STR(?t), 'https://w3id.org/yprov4ml/ns#')) }")
    assert {t.rsplit("#")[1] for (t,) in typed} >= {"RunExecution", "ModelVersion", "Dataset", "MetricSeries"}
    for (kind,) in typed:  # each yprov: type a subclass of a PROV class, by the vocabulary alone
        assert _rows(dataset, f"""SELECT ?super WHERE {{ GRAPH <{VOCABULARY_GRAPH}> {{ <{kind}> rdfs:subClassOf ?super }}
            FILTER(?super IN (prov:Entity, prov:Activity, prov:Agent, prov:Bundle)) }}"""), kind
    # entities found through their yprov: type and the vocabulary's subclass axioms alone
    entities = _rows(dataset, f"""SELECT ?x WHERE {{ GRAPH ?g {{ ?x a ?t }}
        FILTER(STRSTARTS(STR(?t), 'https://w3id.org/yprov4ml/ns#'))
        GRAPH <{VOCABULARY_GRAPH}> {{ ?t rdfs:subClassOf* prov:Entity }} }}""")
    models = [e for rank in range(4) for e in json.loads((run_dir / f"prov.rank{rank}.json").read_text())["entity"]
              if "/model/" in e]
    assert sum("/model/" in x for (x,) in entities) == len(models) == 8  # versions 1 and 2 of the regressor on four ranks


def test_every_class_and_attribute_of_the_vocabulary_is_defined_and_documented():
    graph = rdflib.Graph().parse(data=vocabulary_text(), format="turtle")
    ns = "https://w3id.org/yprov4ml/ns#"
    classes = {str(c)[len(ns):] for c in graph.subjects(rdflib.RDF.type, rdflib.OWL.Class) if str(c).startswith(ns)}
    properties = {str(p)[len(ns):] for p in graph.subjects(rdflib.RDF.type, rdflib.OWL.DatatypeProperty)}
    assert len(classes) >= 20 and len(properties) >= 150
    # the module's quick reading of the file agrees with rdflib's
    assert {n for n, kind in defined_terms().items() if kind != "prov:SoftwareAgent"} == classes | properties
    prov = "http://www.w3.org/ns/prov#"
    for name in classes:
        parents = {str(p) for p in graph.objects(rdflib.URIRef(ns + name), rdflib.RDFS.subClassOf)}
        assert parents & {prov + "Entity", prov + "Activity", prov + "Agent", prov + "Bundle"}, name
    for name in classes | properties:
        subject = rdflib.URIRef(ns + name)
        assert graph.value(subject, rdflib.RDFS.comment) and graph.value(subject, rdflib.RDFS.label), name
    for name in properties:  # every class a property names exists
        carriers = {str(c)[len(ns):] for c in graph.objects(rdflib.URIRef(ns + name),
                                                            rdflib.URIRef("https://schema.org/domainIncludes"))}
        assert carriers and carriers <= classes, name


def test_every_yprov_term_the_runs_write_is_in_the_vocabulary(workflow, mpi_run):
    workdir, _ = workflow
    run_dir, _ = mpi_run
    documents = [workdir / "provenance" / "bundle.prov.json", run_dir / "collection.json",
                 *run_dir.glob("prov.rank*.json"), run_dir.parent.parent.parent / "merged.json"]
    used: set[str] = set()
    for path in documents:
        document = json.loads(path.read_text())
        assert undefined_terms(document) == [], path
        used |= used_terms(document)
    assert {"RunExecution", "DistributedRun", "Task", "WorkflowExecution", "RunBundle", "CrossRankMetric",
            "RankDocument", "total_energy_consumed_kwh", "rule", "sha256"} <= used
    assert not USER_ATTRIBUTE_NAMES & defined_terms().keys()  # the tests' own names are not ours


def test_validate_names_the_terms_a_document_adds_to_the_vocabulary(tmp_path, recorded_run):
    _, path = recorded_run
    document = json.loads(Path(path).read_text())
    run = next(a for a in document["activity"].values() if "yprov:run_id" in a)
    run["yprov:colour_of_the_sky"] = "blue"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    done = _cli("validate", str(changed))
    assert done.returncode == 0  # still valid PROV: a note, not a failure
    assert "1 yprov: term(s) not in the vocabulary" in done.stdout and "colour_of_the_sky" in done.stdout
    assert "not in the vocabulary" not in _cli("validate", str(path)).stdout


def test_convert_vocabulary_writes_the_turtle_file(tmp_path):
    out = tmp_path / "yprov.ttl"
    assert _cli("convert", "--vocabulary", "-o", str(out)).returncode == 0
    assert rdflib.Graph().parse(out, format="turtle")
    refused = _cli("convert", "--vocabulary", "--to", "xml")
    assert refused.returncode == 2 and "--vocabulary" in refused.stderr
    assert "--vocabulary" in _cli("convert").stderr  # nothing to convert: says what to give


def test_docs_prov_model_lists_exactly_the_vocabulary_classes():
    import re
    text = (ROOT / "docs" / "prov-model.md").read_text()
    table = text[text.index("## The vocabulary"):]
    documented = dict(re.findall(r"^\| `yprov:(\w+)` \| `(prov:\w+)` \|", table, re.MULTILINE))
    graph = rdflib.Graph().parse(data=vocabulary_text(), format="turtle")
    ns = "https://w3id.org/yprov4ml/ns#"
    classes = {str(c)[len(ns):]: graph.namespace_manager.qname(graph.value(c, rdflib.RDFS.subClassOf))
               for c in graph.subjects(rdflib.RDF.type, rdflib.OWL.Class) if str(c).startswith(ns)}
    assert documented == classes
    # every attribute the record table names is a term of the vocabulary
    records = text[text.index("## Records"):text.index("Numbers are typed literals")]
    named = {token for row in records.splitlines() if row.startswith("| ") and row.count("|") >= 6
             for token in re.findall(r"`([a-z_][a-z0-9_]*)`", row.split("|")[4])}
    assert named and named <= defined_terms().keys(), sorted(named - defined_terms().keys())
