"""The PROV model of DESIGN.md, checked on real recorded runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type
from yprov4ml.prov.document import VOCABULARY
from yprov4ml.capture.environment import REDACTED, environment_variables, redact_url_credentials

from conftest import assert_valid_prov


def relations(doc: dict, kind: str) -> list[dict]:
    return list(doc.get(kind, {}).values())


def typed(value):
    return value["$"] if isinstance(value, dict) else value


def test_record_passes_round_trip_and_schema(recorded_run):
    _, path = recorded_run
    assert_valid_prov(path)


def test_prefixes_are_absolute_iris_with_the_standard_xsd(recorded_run):
    _, path = recorded_run
    doc = json.loads(Path(path).read_text())
    assert doc["prefix"]["xsd"] == "http://www.w3.org/2001/XMLSchema#"
    assert doc["prefix"]["user"] == "http://www.example.org/"
    for prefix, iri in doc["prefix"].items():
        assert iri.startswith(("http://", "https://", "urn:")), (prefix, iri)


def test_run_activity_carries_identity_and_status(recorded_run):
    run, path = recorded_run
    doc = json.loads(Path(path).read_text())
    activity = doc["activity"]["run:rank-0"]
    assert prov_type(activity) == "yprov:RunExecution"
    assert activity["yprov:status"] == "FINISHED"
    assert activity["yprov:run_id"] == run.run_id
    assert typed(activity["yprov:world_size"]) == "1"
    for key in ("prov:startTime", "prov:endTime", "yprov:host", "yprov:pid", "yprov:command_line"):
        assert key in activity


def test_contexts_are_activities_informed_by_the_run(recorded_run):
    _, path = recorded_run
    doc = json.loads(Path(path).read_text())
    contexts = {k for k, v in doc["activity"].items() if prov_type(v) == "yprov:Context"}
    assert contexts == {"run:rank-0/context/training", "run:rank-0/context/validation",
                        "run:rank-0/context/evaluation"}
    informed = {(r["prov:informed"], r["prov:informant"]) for r in relations(doc, "wasInformedBy")}
    assert {(c, "run:rank-0") for c in contexts} <= informed


def test_person_and_software_agents_are_associated(recorded_run):
    _, path = recorded_run
    doc = json.loads(Path(path).read_text())
    kinds = {prov_type(v) for v in doc["agent"].values()}
    assert kinds == {"prov:Person", "prov:SoftwareAgent"}
    associated = {r["prov:agent"] for r in relations(doc, "wasAssociatedWith") if r["prov:activity"] == "run:rank-0"}
    assert associated == set(doc["agent"])
    assert doc["agent"]["yprov:yprov4ml"]["yprov:version"] == yprov4ml.__version__


def test_parameters_are_used_entities_with_typed_values(recorded_run):
    _, path = recorded_run
    doc = json.loads(Path(path).read_text())
    params = {v["prov:label"]: v["yprov:value"] for v in doc["entity"].values() if prov_type(v) == "yprov:Parameter"}
    assert params["lr"] == {"$": "0.01", "type": "xsd:double"}
    assert params["epochs"]["type"] in ("xsd:int", "xsd:integer")
    assert params["optimizer"] == "adam"
    assert params["use_amp"] is False
    used = {r["prov:entity"] for r in relations(doc, "used") if r["prov:activity"] == "run:rank-0"}
    assert "run:rank-0/param/lr" in used


def test_metric_series_entity_summarises_and_points_to_its_file(recorded_run):
    run, path = recorded_run
    doc = json.loads(Path(path).read_text())
    entity = doc["entity"]["run:rank-0/metric/training/loss"]
    assert typed(entity["yprov:count"]) == "30"
    assert typed(entity["yprov:first_step"]) == "0" and typed(entity["yprov:last_step"]) == "29"
    assert float(typed(entity["yprov:max"])) == 1.0
    assert float(typed(entity["yprov:min"])) == 1.0 / 30
    assert float(typed(entity["yprov:last_value"])) == 1.0 / 30
    metric_file = run.run_dir / entity["prov:location"]
    assert entity["yprov:sha256"] == hashlib.sha256(metric_file.read_bytes()).hexdigest()
    generated = {(r["prov:entity"], r["prov:activity"]) for r in relations(doc, "wasGeneratedBy")}
    assert ("run:rank-0/metric/training/loss", "run:rank-0/context/training") in generated


def test_model_versions_form_a_derivation_chain_with_torch_facts(recorded_run):
    run, path = recorded_run
    doc = json.loads(Path(path).read_text())
    versions = {k: v for k, v in doc["entity"].items() if prov_type(v) == "yprov:ModelVersion"}
    assert set(versions) == {f"run:rank-0/model/mlp/v{i}" for i in (1, 2, 3)}
    derived = {(r["prov:generatedEntity"], r["prov:usedEntity"]) for r in relations(doc, "wasDerivedFrom")}
    assert derived == {("run:rank-0/model/mlp/v2", "run:rank-0/model/mlp/v1"),
                       ("run:rank-0/model/mlp/v3", "run:rank-0/model/mlp/v2")}
    v3 = versions["run:rank-0/model/mlp/v3"]
    assert typed(v3["yprov:parameter_count"]) == str(3 * 4 + 4 + 4 + 1)
    assert typed(v3["yprov:memory_bytes"]) == str(4 * 21)
    assert json.loads(v3["yprov:layers"]) == ["0: Linear", "1: ReLU", "2: Linear"]
    checkpoint = run.run_dir / v3["prov:location"]
    assert v3["yprov:sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert typed(v3["yprov:size_bytes"]) == str(checkpoint.stat().st_size)


def test_artifact_is_copied_hashed_and_generated(recorded_run):
    run, path = recorded_run
    doc = json.loads(Path(path).read_text())
    artifact = doc["entity"]["run:rank-0/artifact/notes.txt"]
    stored = run.run_dir / artifact["prov:location"]
    assert stored.read_text() == "hello provenance\n"
    assert artifact["yprov:sha256"] == hashlib.sha256(b"hello provenance\n").hexdigest()
    generated = {(r["prov:entity"], r["prov:activity"]) for r in relations(doc, "wasGeneratedBy")}
    assert ("run:rank-0/artifact/notes.txt", "run:rank-0/context/evaluation") in generated


def test_dataset_entity_describes_a_dataloader(save_dir):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.zeros(50, 3, 8, 8), torch.zeros(50, dtype=torch.long))
    with yprov4ml.start_run(experiment_name="data", provenance_save_dir=save_dir) as run:
        yprov4ml.log_dataset(DataLoader(data, batch_size=16), "train", yprov4ml.Context.TRAINING)
    view = yprov4ml.load_run(run.run_dir)
    (dataset,) = view.datasets
    assert dataset["samples"] == 50 and dataset["batch_size"] == 16 and dataset["batches"] == 4
    assert json.loads(dataset["sample_shape"]) == [[3, 8, 8], []]
    assert dataset["dataset_class"] == "TensorDataset"


def test_source_entity_records_git_commit_and_dirty_flag(tmp_path):
    import subprocess
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text("import yprov4ml\nwith yprov4ml.start_run(experiment_name='git', provenance_save_dir='out'):\n"
                      "    yprov4ml.log_param('a', 1)\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "train.py"], cwd=repo, check=True)
    with script.open("a") as fh:
        fh.write("# edited\n")
    subprocess.run([sys.executable, "train.py"], cwd=repo, check=True)
    views = sorted((yprov4ml.load_run(p) for p in (repo / "out" / "git").iterdir()), key=lambda v: v.start_time)
    assert [v.source["git_commit"] for v in views] == [commit, commit]
    assert [v.source["git_dirty"] for v in views] == [False, True]
    assert views[0].source["script_sha256"] != views[1].source["script_sha256"]


def test_environment_redacts_secret_looking_variables(save_dir, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "tok-123-secret")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("PROXY", "https://alice:pa55@proxy.example.org:3128")
    monkeypatch.setenv("TRAINING_FLAVOUR", "vanilla")
    with yprov4ml.start_run(experiment_name="env", provenance_save_dir=save_dir) as run:
        pass
    text = run.prov_path.read_text()
    for secret in ("tok-123-secret", "hunter2", "pa55"):
        assert secret not in text
    env = json.loads(yprov4ml.load_run(run.run_dir).environment["environment_variables"])
    assert env["MY_API_TOKEN"] == REDACTED and env["DB_PASSWORD"] == REDACTED
    assert env["TRAINING_FLAVOUR"] == "vanilla"
    assert env["PROXY"] == f"https://{REDACTED}@proxy.example.org:3128"
    facts = yprov4ml.load_run(run.run_dir).environment
    assert facts["python_version"] and facts["os"]
    assert any(p.lower().startswith("prov==") for p in json.loads(facts["packages"]))


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "aws_secret_access_key", "SSH_AUTH_SOCK", "MY_CREDENTIALS",
                                  "PASSWORD", "WANDB_API_KEY"])
def test_secret_names_are_recognised(name):
    assert environment_variables({name: "x"})[name] == REDACTED


def test_url_credentials_are_hidden_but_plain_urls_kept():
    assert redact_url_credentials("https://github.com/org/repo.git") == "https://github.com/org/repo.git"
    assert "s3cr3t" not in redact_url_credentials("https://user:s3cr3t@github.com/org/repo.git")


def test_user_keys_become_valid_identifiers_keeping_their_text(save_dir):
    keys = ["learning rate", "a:b", "x/y", "ünïcödé", "a b", "a_b"]
    with yprov4ml.start_run(experiment_name="keys", provenance_save_dir=save_dir) as run:
        for i, key in enumerate(keys):
            yprov4ml.log_param(key, i)
            yprov4ml.log_metric(key, float(i), yprov4ml.Context.TRAINING, 0)
    doc = assert_valid_prov(run.prov_path)
    params = [k for k, v in doc["entity"].items() if prov_type(v) == "yprov:Parameter"]
    assert len(params) == len(keys)  # no two keys collapsed into one identifier
    for identifier in doc["entity"]:
        local = identifier.split(":", 1)[1]
        assert all(c.isascii() and (c.isalnum() or c in "_.-/") for c in local), identifier
    view = yprov4ml.load_run(run.run_dir)
    assert view.params == {k: i for i, k in enumerate(keys)}
    assert {k for k, _ in view.metrics} == set(keys)


def _types_in(node):
    """Every prov:type value in a PROV-JSON object, bundles included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "prov:type":
                yield value
            else:
                yield from _types_in(value)


def test_prov_types_are_qualified_names_for_prov_and_rdf(recorded_run):
    import rdflib
    from prov.model import PROV_TYPE, ProvDocument, QualifiedName

    run, path = recorded_run
    doc = ProvDocument.deserialize(str(path), format="json")
    types = [value for record in doc.get_records() for key, value in record.attributes if key == PROV_TYPE]
    assert len(types) > 10 and all(isinstance(t, QualifiedName) for t in types), types
    graph = rdflib.Graph().parse(data=doc.serialize(format="rdf", rdf_format="turtle"), format="turtle")
    prov_ns, yprov_ns = rdflib.Namespace("http://www.w3.org/ns/prov#"), rdflib.Namespace(VOCABULARY)
    for kind in (prov_ns.Person, prov_ns.SoftwareAgent, yprov_ns.RunExecution, yprov_ns.MetricSeries):
        assert (None, rdflib.RDF.type, kind) in graph, kind  # a type, not the text "prov:Person"
    assert not [o for o in graph.objects(None, prov_ns.type) if isinstance(o, rdflib.Literal)]


def test_collections_merges_and_bundles_write_typed_names(tmp_path):
    from yprov4ml.distributed.merge import merge

    for rank in (0, 1):
        with yprov4ml.start_run("www.example.org", "typed", tmp_path / "prov", collect_all_processes=True,
                                rank=rank, world_size=2, run_id="t", collection_timeout_s=5):
            yprov4ml.log_metric("loss", float(rank))
    run_dir = tmp_path / "prov" / "typed" / "t"
    merged = merge([run_dir], tmp_path / "merged.json").output
    for path in (run_dir / "collection.json", run_dir / "prov.rank1.json", merged):
        types = list(_types_in(json.loads(path.read_text())))
        assert types and all(isinstance(t, dict) and t["type"] == "xsd:QName" for t in types), path


def test_documents_written_with_plain_string_types_still_read(recorded_run, tmp_path):
    import shutil

    from yprov4ml.distributed.merge import merge

    run, path = recorded_run
    old = tmp_path / "old"
    shutil.copytree(run.run_dir, old)

    def plain(node):  # what versions before the change wrote
        if isinstance(node, dict):
            return {k: (v["$"] if k == "prov:type" and isinstance(v, dict) else plain(v)) for k, v in node.items()}
        return node

    (old / "prov.rank0.json").write_text(json.dumps(plain(json.loads(path.read_text()))))
    assert '"prov:type": "yprov:RunExecution"' in (old / "prov.rank0.json").read_text()
    then, now = yprov4ml.load_run(old), yprov4ml.load_run(run.run_dir)
    assert then.params == now.params and then.metric("loss").values == now.metric("loss").values
    assert len(then.models) == len(now.models) == 3
    assert merge([old], tmp_path / "merged.json").ranks == [0]
