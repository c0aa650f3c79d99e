"""Hostile documents, registries and names over every reader and CLI command: a message and exit 0/1/2,
never a traceback, nothing written outside the target, memory bounded."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yprov4ml
from yprov4ml.prov.decode import prov_type
from yprov4ml.distributed.merge import main as merge_main
from yprov4ml.errors import ArtifactError, InvalidMetricError
from yprov4ml.tools.cli import main as cli_main
from yprov4wfs_bridge.cli import main as bridge_main

from conftest import ROOT


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """A real rank document to mutate."""
    save = tmp_path_factory.mktemp("template")
    with yprov4ml.start_run("www.example.org", "hostile", save) as run:
        yprov4ml.log_param("lr", 0.1)
        yprov4ml.log_metric("loss", 0.5)
        (save / "a.txt").write_text("artifact")
        yprov4ml.log_artifact(save / "a.txt")
    return json.loads(run.prov_path.read_text())


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _call(main, argv: list[str]) -> int:
    """Run a CLI entry point in-process: its exit status; an exception escaping it fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    assert code in (0, 1, 2), (argv, code, err.getvalue()[-2000:])
    assert "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
    return code


def _workflow_attaching(root: Path, run_dir: Path) -> Path:
    wf = root / "wf"
    wf.mkdir(exist_ok=True)
    manifest = {"id": "w", "execution_id": "e", "name": "w", "description": "", "start_time": 1.0, "end_time": 2.0,
                "status": "FINISHED", "error": None, "agents": [{"id": "u", "name": "u", "kind": "Person"}],
                "tasks": [{"id": "train", "inputs": [], "outputs": [], "agents": ["u"], "command": "",
                           "start_time": 1.0, "end_time": 2.0, "status": "FINISHED", "error": None,
                           "attached": [str(run_dir)]}], "data": []}
    (wf / "workflow.json").write_text(json.dumps(manifest))
    return wf


@pytest.fixture
def memory_limit():
    """At most 2 GiB more address space than the test process already has, while the test runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def every_reader(root: Path, document_text: str, drawing: bool = False) -> None:
    """Write the document as a run's rank 0 and put it through every command; check what was written."""
    run_dir = root / "run"
    (run_dir / "metrics/training").mkdir(parents=True, exist_ok=True)
    (run_dir / "prov.rank0.json").write_text(document_text)
    outside = root / "outside"
    outside.mkdir(exist_ok=True)
    before = _files(root)
    out = root / "out"
    out.mkdir(exist_ok=True)
    for argv in (["show", str(run_dir)], ["show", str(run_dir), "--json"], ["validate", str(run_dir / "prov.rank0.json")],
                 ["graph", str(run_dir), "-o", str(out / "g.dot")], ["compare", str(run_dir)],
                 ["reproduce", str(run_dir)], ["card", str(run_dir), "-o", str(out / "card.md")],
                 ["crate", str(run_dir), "-o", str(out / "crate")],
                 ["export", str(run_dir), "--format", "csv", "-o", str(out / "export")],
                 ["convert", str(run_dir / "prov.rank0.json"), "--to", "provn", "-o", str(out / "c.provn")]):
        _call(cli_main, argv)
    if drawing:  # matplotlib and Graphviz: slower, so for the explicit cases only
        _call(cli_main, ["report", str(run_dir), "-o", str(out / "report.html")])
        _call(cli_main, ["plot", str(run_dir), "--metric", "loss", "-o", str(out / "plot.png")])
    _call(merge_main, [str(run_dir), "-o", str(out / "merged.json"), "--no-progress"])
    _call(bridge_main, ["build", str(_workflow_attaching(root, run_dir)), "--no-svg"])
    written = _files(root) - before
    allowed = (out, root / "wf", run_dir)
    assert all(any(p.is_relative_to(a) for a in allowed) for p in written), sorted(written)
    for crate_file in [*(root / "wf").rglob("*"), *(out / "crate").rglob("*")]:
        if crate_file.is_file() and not crate_file.is_symlink():
            assert b"root:x:0:0" not in crate_file.read_bytes(), crate_file  # /etc/passwd never copied in


HOSTILE_TEXT = {
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "random bytes": "\x00\xff\xfe garbage",
    "not an object": "[1, 2, 3]",
    "empty object": "{}",
}


def _mutations(template: dict) -> dict[str, dict]:
    run_id = next(k for k, v in template["activity"].items() if prov_type(v) == "yprov:RunExecution")
    metric_id = next(k for k, v in template["entity"].items() if prov_type(v) == "yprov:MetricSeries")

    def change(path: list, value) -> dict:
        doc = copy.deepcopy(template)
        holder = doc
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
        return doc

    return {
        "world size 10**12": change(["activity", run_id, "yprov:world_size"], {"$": str(10**12), "type": "xsd:long"}),
        "world size 1e999": change(["activity", run_id, "yprov:world_size"], 1e999),
        "5000-digit world size": change(["activity", run_id, "yprov:world_size"], {"$": "9" * 5000, "type": "xsd:long"}),
        "rank zero in words": change(["activity", run_id, "yprov:rank"], "zero"),
        "activity as a list": change(["activity"], [1, 2]),
        "location /etc/passwd": change(["entity", metric_id, "prov:location"], "/etc/passwd"),
        "location escaping": change(["entity", metric_id, "prov:location"], "../../../../../../../../etc/passwd"),
        "location missing": change(["entity", metric_id], {k: v for k, v in template["entity"][metric_id].items()
                                                           if k != "prov:location"}),
        "count as text": change(["entity", metric_id, "yprov:count"], "many"),
        "negative count": change(["entity", metric_id, "yprov:count"], -5),
        "key as a list": change(["entity", metric_id, "yprov:key"], [1]),
    }


@pytest.mark.parametrize("name", list(HOSTILE_TEXT))
def test_hostile_text_over_every_reader(tmp_path, name, memory_limit):
    every_reader(tmp_path, HOSTILE_TEXT[name], drawing=True)


def test_hostile_documents_over_every_reader(tmp_path, template, memory_limit):
    for n, (name, doc) in enumerate(_mutations(template).items()):
        every_reader(tmp_path / f"m{n}", json.dumps(doc), drawing=True)


def test_a_metric_file_that_is_a_link_to_a_secret_is_refused(tmp_path):
    with yprov4ml.start_run("www.example.org", "linked", tmp_path / "prov") as run:
        yprov4ml.log_metric("loss", 0.5)
    metric = run.run_dir / "metrics.rank0.ymetric"
    metric.unlink()
    metric.symlink_to("/etc/passwd")
    with pytest.warns(UserWarning, match="outside the run directory"):
        view = yprov4ml.load_run(run.run_dir)
    assert view.metrics == {}
    wf = _workflow_attaching(tmp_path, run.run_dir)
    assert _call(bridge_main, ["build", str(wf), "--no-svg"]) == 0
    bundle = (wf / "bundle.prov.json").read_text()
    assert "outside the run directory" in bundle  # listed as a gap
    assert not any(b"root:x:0:0" in p.read_bytes() for p in wf.rglob("*") if p.is_file() and not p.is_symlink())


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4), max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_anywhere_in_a_document(tmp_path_factory, template, memory_limit, data):
    paths = [p for p in _paths(template) if p]
    path = data.draw(st.sampled_from(paths))
    doc = copy.deepcopy(template)
    holder = doc
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = data.draw(JSON)
    every_reader(tmp_path_factory.mktemp("fuzz"), json.dumps(doc))


@pytest.mark.parametrize("line", ['{"event":"end"}', "[1,2]", '{"event":"end","task_id":5}', "not json",
                                  '{"event":"start","task_id":"train","run_id":"r","rank":"0","run_dir":"/",'
                                  '"prov_path":"/etc/passwd"}'])
def test_damaged_registry_lines_become_gaps(tmp_path, line):
    wf = _workflow_attaching(tmp_path, tmp_path / "none")
    manifest = json.loads((wf / "workflow.json").read_text())
    manifest["tasks"][0]["attached"] = []
    (wf / "workflow.json").write_text(json.dumps(manifest))
    (wf / "runs.jsonl").write_text(line + "\n")
    from yprov4wfs_bridge import build

    result = build(wf, svg=False, crate=False)
    assert any("damaged line" in g for g in result.gaps), result.gaps


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_absurd_sizes_are_refused_under_a_memory_limit(tmp_path, template):
    doc = _mutations(template)["world size 10**12"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "prov.rank0.json").write_text(json.dumps(doc))
    wf = _workflow_attaching(tmp_path, run_dir)
    merged = subprocess.run([sys.executable, "-m", "yprov4ml.distributed.merge", str(run_dir), "-o",
                             str(tmp_path / "m.json")], capture_output=True, text=True, timeout=120,
                            preexec_fn=_limit_memory, cwd=ROOT)
    assert merged.returncode == 2 and "world size" in merged.stderr, merged.stderr[-2000:]
    built = subprocess.run([sys.executable, "-m", "yprov4wfs_bridge.cli", "build", str(wf), "--no-svg"],
                           capture_output=True, text=True, timeout=120, preexec_fn=_limit_memory, cwd=ROOT)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "world size" in (wf / "bundle.prov.json").read_text()  # the refused document is a gap


def test_odd_names_and_values_raise_the_projects_errors(save_dir):
    with yprov4ml.start_run(experiment_name="odd", provenance_save_dir=save_dir):
        (save_dir / "f.txt").write_text("x")
        with pytest.raises(ArtifactError, match="NUL"):
            yprov4ml.log_artifact(save_dir / "f.txt", name="bad\0name")
        with pytest.raises(InvalidMetricError, match="float64"):
            yprov4ml.log_metric("huge", 10**400)
        yprov4ml.log_param("huge_param", 10**400)
    assert yprov4ml.load_run(next((save_dir / "odd").iterdir())).params == {"huge_param": str(10**400)}


def test_a_copied_artifact_keeps_its_permission_bits(save_dir, tmp_path):
    key = tmp_path / "id_rsa"
    key.write_text("not really a key")
    key.chmod(0o600)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "secret.txt").write_text("x")
    (tmp_path / "d" / "secret.txt").chmod(0o600)
    with yprov4ml.start_run(experiment_name="modes", provenance_save_dir=save_dir) as run:
        copied = yprov4ml.log_artifact(key)
        tree = yprov4ml.log_artifact(tmp_path / "d")
    assert os.stat(run.run_dir / copied.path).st_mode & 0o777 == 0o600
    assert os.stat(run.run_dir / tree.path / "secret.txt").st_mode & 0o777 == 0o600


def test_a_directory_artifact_too_large_to_copy_is_refused_before_copying(save_dir, tmp_path, monkeypatch):
    from yprov4ml import run_files

    monkeypatch.setattr(run_files, "MAX_COPIED_ENTRIES", 50)
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(60):
        (tree / f"f{i}").write_text("x")
    with yprov4ml.start_run(experiment_name="many", provenance_save_dir=save_dir) as run:
        with pytest.raises(ArtifactError, match="copy=False"):
            yprov4ml.log_artifact(tree)
        referenced = yprov4ml.log_artifact(tree, copy=False)
    assert not (run.run_dir / "artifacts").exists() and referenced.path == str(tree.resolve())


def test_a_directory_with_a_link_loop_is_copied_once(save_dir, tmp_path):
    tree = tmp_path / "loop"
    tree.mkdir()
    (tree / "data.txt").write_text("x")
    (tree / "again").symlink_to(".")
    with yprov4ml.start_run(experiment_name="loop", provenance_save_dir=save_dir) as run:
        item = yprov4ml.log_artifact(tree)
    copied = run.run_dir / item.path
    assert (copied / "again").is_symlink() and sum(1 for _ in copied.rglob("*")) == 2
    assert item.size == 1


def test_planted_secrets_reach_no_output_in_clear(tmp_path):
    env = {**os.environ, "MYSQL_PWD": "PLANTED-ENV-1", "PASSPHRASE": "PLANTED-ENV-2",
           "NETRC_CONTENTS": "machine x login y password PLANTED-ENV-3",
           "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/PLANTED-ENV-4",
           "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountKey=PLANTED-ENV-5==;x=y",
           "HTTP_PROXY": "http://bob:p@ss-PLANTED-ENV-6@proxy.example.org:3128",
           "ORDINARY_SETTING": "visible-value"}
    done = subprocess.run([sys.executable, str(ROOT / "tests/scripts/secret_training.py"), str(tmp_path),
                           "--db-password", "PLANTED-ARGV-1", "--token=PLANTED-ARGV-2"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    from yprov4ml.tools.report import write_report
    from yprov4wfs_bridge import build

    build(tmp_path / "wf", svg=False)
    run_dir = next((tmp_path / "prov" / "secrets").iterdir())
    write_report([run_dir], tmp_path / "report.html")
    outputs = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("notes.txt",)]
    assert len(outputs) > 10
    leaks = {str(p.relative_to(tmp_path)) for p in outputs if b"PLANTED" in p.read_bytes()}
    assert not leaks, leaks
    view = yprov4ml.load_run(run_dir)
    assert view.params["lr"] == 0.01 and view.params["tokenizer"] == "bert-base-uncased"  # no false alarm
    copy = run_dir / view.source["snapshot"] / "tests" / "scripts" / "secret_training.py"  # the code, secrets out
    assert '"api_key": "<redacted>"' in copy.read_text() and '"tokenizer": "bert-base-uncased"' in copy.read_text()
    assert "tests/scripts/secret_training.py" in json.loads(view.source["snapshot_redacted"])
    assert view.environment["environment_variables"]
    redacted = json.loads(view.run["redacted"])  # a JSON list, like every list attribute
    assert any("--db-password" in r for r in redacted) and any("MYSQL_PWD" in r for r in redacted)
    assert "visible-value" in (run_dir / "prov.rank0.json").read_text()
    from yprov4ml.capture.secrets import is_secret_name

    assert not any(is_secret_name(n) for n in ("PWD", "OLDPWD", "tokenizer", "max_tokens", "author", "key_dim"))


def test_keep_in_clear_leaves_a_named_key_alone(save_dir):
    with yprov4ml.start_run(experiment_name="clear", provenance_save_dir=save_dir,
                            keep_in_clear=["public_key"]) as run:
        yprov4ml.log_params({"public_key": "ssh-ed25519 AAAA", "private_key": "hidden"})
    params = yprov4ml.load_run(run.run_dir).params
    assert params == {"public_key": "ssh-ed25519 AAAA", "private_key": "<redacted>"}
