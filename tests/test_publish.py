"""Publication: metadata given once, a crate and a model card per run, conversion to other PROV formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from yprov4ml.publish.crate_check import validate_crate
from yprov4ml.publish.metadata import MetadataError, load_metadata, normalise_license, normalise_orcid

from conftest import ROOT, only_run_dir

METADATA = ROOT / "examples" / "yprov4ml.toml"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_orcid_and_license_are_checked_with_clear_errors():
    assert normalise_orcid("0000-0002-1825-0097") == "https://orcid.org/0000-0002-1825-0097"
    assert normalise_orcid("https://orcid.org/0000-0001-5109-3700") == "https://orcid.org/0000-0001-5109-3700"
    with pytest.raises(MetadataError, match="wrong check digit"):
        normalise_orcid("0000-0002-1825-0098")
    with pytest.raises(MetadataError, match="malformed"):
        normalise_orcid("orcid:1234")
    assert normalise_license("cc-by-4.0") == "CC-BY-4.0"
    with pytest.raises(MetadataError, match="not an SPDX license id.*spdx.org/licenses"):
        normalise_license("Creative Commons please")


def test_metadata_comes_from_pyproject_then_environment_then_arguments(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.yprov4ml]\nlicense = "MIT"\nversion = "0.1"\nkeywords = ["a"]\n'
        '[[tool.yprov4ml.authors]]\nname = "Ada"\norcid = "0000-0002-1825-0097"\naffiliation = "Uni"\n')
    nested = tmp_path / "src" / "deep"
    nested.mkdir(parents=True)
    found = load_metadata(nested, environ={})
    assert found.license == "MIT" and found.version == "0.1" and found.authors[0].affiliation.name == "Uni"
    assert found.authors[0].orcid == "https://orcid.org/0000-0002-1825-0097"
    env = {"YPROV4ML_LICENSE": "Apache-2.0", "YPROV4ML_AUTHORS": "Bob||Lab; Cy",
           "YPROV4ML_PUBLISHER": "Lab", "YPROV4ML_PUBLISHER_URL": "https://lab.example.org"}
    over = load_metadata(nested, environ=env)
    assert over.license == "Apache-2.0" and [a.name for a in over.authors] == ["Bob", "Cy"]
    assert over.publisher.url == "https://lab.example.org" and over.version == "0.1"  # the file's, kept
    assert load_metadata(nested, environ=env, license="CC0-1.0").license == "CC0-1.0"
    (tmp_path / "pyproject.toml").write_text('[tool.yprov4ml]\nlicence = "MIT"\n')  # a typo is refused
    with pytest.raises(MetadataError, match="unknown metadata key.*licence"):
        load_metadata(nested, environ={})
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(MetadataError, match="YPROV4ML_.*wrong check digit"):
        load_metadata(nested, environ={"YPROV4ML_AUTHORS": "X|0000-0002-1825-0098"})


@pytest.fixture(scope="module")
def published_run(tmp_path_factory):
    """A real torch run ended with end_run(crate_ro_crate=True, create_card=True), with energy measured."""
    pytest.importorskip("torch")
    base = tmp_path_factory.mktemp("published")
    script = base / "train.py"
    script.write_text(f"""
import torch, yprov4ml
yprov4ml.start_run("www.example.org", "card", r"{base / 'prov'}", energy_country="ITA")
yprov4ml.log_params({{"lr": 0.05, "optimizer": "sgd"}})
x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0)); y = x.sum(1, keepdim=True)
yprov4ml.log_dataset(torch.utils.data.TensorDataset(x, y), "sums")
net = torch.nn.Linear(4, 1); opt = torch.optim.SGD(net.parameters(), lr=0.05)
for step in range(30):
    opt.zero_grad(); loss = torch.nn.functional.mse_loss(net(x), y); loss.backward(); opt.step()
    yprov4ml.log_metric("loss", loss.item(), yprov4ml.Context.TRAINING, step)
yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, 29)
yprov4ml.log_metric("test_mse", 0.125, yprov4ml.Context.EVALUATION, 0)
yprov4ml.save_model_version(net, "linear", yprov4ml.Context.TRAINING, 29)
yprov4ml.end_run(crate_ro_crate=True, create_card=True)
""")
    import os

    done = subprocess.run([sys.executable, str(script)], cwd=base, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "YPROV4ML_METADATA": str(METADATA)})
    assert done.returncode == 0, done.stderr
    return only_run_dir(base / "prov", "card")


def test_the_model_card_says_what_the_record_holds(published_run):
    import yaml

    from yprov4ml.prov.reader import load_run

    view = load_run(published_run)
    text = (published_run / "model_card.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-4.0" and meta["datasets"] == ["sums"]
    assert set(meta["metrics"]) == {"loss", "test_mse"}
    values = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values["loss"] == view.metric("loss").values[-1] and values["test_mse"] == 0.125
    emissions = meta["co2_eq_emissions"]
    assert emissions["source"] == "codecarbon" and emissions["emissions"] == pytest.approx(
        view.run["total_emissions_kg"] * 1000)
    for section in ("## Model details", "## Training data", "## Training procedure and hyperparameters",
                    "## Results", "## Energy and emissions", "## Provenance"):
        assert section in text
    assert "| lr | 0.05 |" in text and "| optimizer | sgd |" in text
    assert "| linear | 1 | Linear |" in text and "Josiah Carberry (Brown University)" in text
    assert f"`{view.prov_path.name}`" in text and "yprov4ml reproduce" in text
    dataset_row = next(line for line in text.splitlines() if line.startswith("| sums |"))
    assert str(view.datasets[0]["sample_shape"]) in dataset_row and "None" not in dataset_row
    assert "(started directly, 1 rank)" in text and "1 rank(s)" not in text
    assert view.run["energy_country"] == "ITA" and view.run["energy_country_source"] == "start_run(energy_country=...)"


def test_the_run_crate_is_clean_at_recommended_and_holds_the_run(published_run):
    crate = published_run / "crate"
    for profile in ("process-run-crate-0.5", "ro-crate-1.1"):  # a run's crate claims no workflow
        for severity in ("REQUIRED", "RECOMMENDED"):
            report = validate_crate(crate, severity, profile)
            assert report.passed and not report.issues and not report.known_conflicts, (profile, report.issues)
    meta = json.loads((crate / "ro-crate-metadata.json").read_text())
    graph = {e["@id"]: e for e in meta["@graph"]}
    assert (crate / "prov.rank0.json").is_file() and graph["prov.rank0.json"]["about"] == {"@id": "#rank-0"}
    assert (crate / "metrics.rank0.ymetric").is_file()
    assert any(i.startswith("models/rank0/linear.v1") for i in graph)
    assert (crate / "source" / "rank0" / "files" / "train.py").is_file()
    assert (crate / "README.md").read_text() == (published_run / "model_card.md").read_text()
    action = graph["#rank-0"]
    assert action["actionStatus"] == "http://schema.org/CompletedActionStatus"
    params = {graph[r["@id"]]["name"]: graph[r["@id"]]["value"] for r in action["object"]
              if graph.get(r["@id"], {}).get("@type") == "PropertyValue"}
    assert params == {"lr": "0.05", "optimizer": "sgd"}
    assert graph["./"]["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    # The crate's copy of the run is not counted as a second run by the tools that search for runs.
    from yprov4ml.tools.compare import find_runs

    assert find_runs([published_run.parent]) == [published_run]


def test_yprov4ml_crate_without_metadata_is_valid_and_says_what_is_missing(published_run, tmp_path):
    out = tmp_path / "bare-crate"
    done = cli("crate", str(published_run), "-o", str(out), "--validate", env={"YPROV4ML_METADATA": ""})
    assert done.returncode == 0, done.stderr
    assert "valid process-run-crate-0.5 at REQUIRED" in done.stdout
    root = next(e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"] if e["@id"] == "./")
    assert "No license was given" in root["license"]  # said, never a license chosen for the user
    hinted = cli("validate", str(out), "--severity", "RECOMMENDED", env={"YPROV4ML_METADATA": ""})
    assert hinted.returncode == 1
    assert "license: no SPDX license id" in hinted.stderr and "publisher:" in hinted.stderr
    clean = cli("crate", str(published_run), "-o", str(out), "--validate", "--severity", "RECOMMENDED",
                "--metadata", str(METADATA))
    assert clean.returncode == 0 and "valid process-run-crate-0.5 at RECOMMENDED" in clean.stdout, clean.stdout
    bad = cli("card", str(published_run), "--author", "Eve|0000-0002-1825-0098")
    assert bad.returncode == 2 and "wrong check digit" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("target", ["turtle", "trig", "nquads", "xml"])
def test_convert_round_trips_rank_documents_and_bundles(published_run, tmp_path, target):
    pytest.importorskip("rdflib")
    pytest.importorskip("lxml")
    from prov.model import ProvDocument

    from yprov4ml.tools.convert import FORMATS, read_prov_json
    from yprov4ml.tools.rdf import read_prov_rdf

    bundle = ProvDocument()
    bundle.add_namespace("ex", "https://example.org/")
    inner = bundle.bundle("ex:rank-0")
    inner.update(read_prov_json(published_run / "prov.rank0.json"))
    bundle.entity("ex:summary")
    (tmp_path / "bundle.json").write_text(bundle.serialize(format="json"))
    for source in (published_run / "prov.rank0.json", tmp_path / "bundle.json"):
        bundled = source.name == "bundle.json"
        out = tmp_path / f"out{FORMATS[target][0]}"
        before = out.read_bytes() if out.exists() else None
        done = cli("convert", str(source), "--to", target, "-o", str(out))
        if bundled and target == "turtle":  # a Turtle file cannot hold a bundle: refused, the right form named
            assert done.returncode == 2 and "--to trig -o" in done.stderr and "Traceback" not in done.stderr
            assert out.read_bytes() == before  # the rank document's Turtle written before is left as it was
            continue
        assert done.returncode == 0, done.stderr
        written = Path(done.stdout.strip())
        back = read_prov_rdf(written.read_text(), target) if target != "xml" else \
            ProvDocument.deserialize(content=written.read_text(), format="xml")
        assert back == read_prov_json(source)  # every record, attribute and bundle survives
        assert len(back.bundles) == (1 if bundled else 0)


def test_convert_to_provn(published_run, tmp_path):
    done = cli("convert", str(published_run / "prov.rank0.json"), "--to", "provn", "-o", str(tmp_path / "r.provn"))
    assert done.returncode == 0
    text = (tmp_path / "r.provn").read_text()
    assert text.startswith("document") and "activity(run:rank-0" in text and "used(" in text
