"""Truncated and malformed files fed to every PROV-JSON reader: a clear error, never a deep traceback,
never a partial output."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yprov4ml
from yprov4ml.errors import NotARunError
from yprov4ml.distributed.merge import MergeError, merge
from yprov4ml.storage.metric_file import read_metrics_file
from yprov4ml.storage.journal import read_journal
from yprov4ml.tools.recover import recover

from conftest import assert_valid_prov

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=8)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("fuzz")
    with yprov4ml.start_run("www.example.org", "fuzz", save_dir, save_after_n_logs=4) as run:
        yprov4ml.log_params({"lr": 0.1, "name": "x"})
        for i in range(10):
            yprov4ml.log_metric("loss", 1.0 / (i + 1), step=i)
        path = save_dir / "a.txt"
        path.write_text("artifact")
        yprov4ml.log_artifact(path)
    return run.run_dir


def _paths(values: dict) -> list[tuple]:
    """Every (key, ...) path to a value inside a nested dict."""
    out = []
    for key, value in values.items():
        out.append((key,))
        if isinstance(value, dict):
            out += [(key, *rest) for rest in _paths(value)]
    return out


@FUZZ
@given(cut=st.floats(0, 0.999))
def test_merge_of_a_truncated_document(sample_run, tmp_path, cut):
    text = (sample_run / "prov.rank0.json").read_bytes()
    broken = tmp_path / "prov.rank0.json"
    broken.write_bytes(text[: int(len(text) * cut)])
    out = tmp_path / "out.json"
    with pytest.raises(MergeError, match=str(broken)):
        merge([broken], out)
    assert not out.exists()


@FUZZ
@given(data=st.data())
def test_merge_of_a_mutated_document(sample_run, tmp_path, data):
    doc = json.loads((sample_run / "prov.rank0.json").read_text())
    path = data.draw(st.sampled_from(_paths(doc)))
    holder = doc
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = data.draw(json_values)
    mutated = tmp_path / "prov.rank0.json"
    mutated.write_text(json.dumps(doc))
    out = tmp_path / "out.json"
    out.unlink(missing_ok=True)
    try:
        merge([mutated], out)
    except MergeError as exc:
        assert str(mutated) in str(exc)
        assert not out.exists()
    else:
        assert_valid_prov(out)  # still a run document: what merge writes of it is valid PROV-JSON


@FUZZ
@given(cut=st.floats(0, 1), garbage=st.binary(max_size=40))
def test_recover_of_a_damaged_journal(sample_run, tmp_path, cut, garbage):
    run_dir = tmp_path / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(sample_run, run_dir)
    (run_dir / "prov.rank0.json").unlink()
    journal = run_dir / "journal.rank0.jsonl"
    text = journal.read_bytes()
    journal.write_bytes(text[: int(len(text) * cut)] + garbage)
    try:
        result = recover(run_dir)
    except NotARunError as exc:
        assert "journal" in str(exc)
        assert not (run_dir / "prov.rank0.json").exists()
    else:
        if not list(read_journal(journal)):  # nothing readable at all: a start_run that never finished starting
            assert "never started" in result.skipped[0] and not result.recovered
            return
        assert result.recovered == {0: run_dir / "prov.rank0.json"}
        assert_valid_prov(run_dir / "prov.rank0.json")


@FUZZ
@given(cut=st.integers(0, 400), garbage=st.binary(max_size=30))
def test_metric_reader_on_damaged_files(sample_run, tmp_path, cut, garbage):
    data = (sample_run / "metrics.rank0.ymetric").read_bytes()
    damaged = tmp_path / "m.ymetric"
    damaged.write_bytes(data[:cut] + garbage)
    try:
        found = read_metrics_file(damaged)
    except ValueError as exc:
        assert "metric file" in str(exc)
    else:
        full = read_metrics_file(sample_run / "metrics.rank0.ymetric")
        for number, metric in found.series.items():  # every point read back is one that was written, in order
            assert metric.values == full.series[number].values[: len(metric.values)]


@FUZZ
@given(content=st.binary(max_size=200))
def test_validate_and_load_run_on_arbitrary_bytes(tmp_path, content):
    path = tmp_path / "prov.rank0.json"
    path.write_bytes(content)
    from yprov4ml.prov.validate import validate_file

    assert not validate_file(path).ok
    with pytest.raises(NotARunError):
        yprov4ml.load_run(path)


def test_merge_refusals_leave_no_output(sample_run, tmp_path):
    out = tmp_path / "out.json"
    other = tmp_path / "other"
    with yprov4ml.start_run("www.example.org", "fuzz2", other) as run2:
        yprov4ml.log_metric("loss", 1.0)
    not_prov = tmp_path / "not_prov.json"
    not_prov.write_text(json.dumps({"hello": "world"}))
    cases = [
        ([tmp_path / "missing.json"], "no such file"),
        ([not_prov], "not a yprov4ml run document|not valid PROV-JSON"),
        ([str(tmp_path / "*.nothing")], "matches no file"),
        ([tmp_path], "no prov.rank"),
        ([sample_run, run2.run_dir], "2 different runs"),
        ([sample_run / "prov.rank0.json", sample_run / "prov.rank0.json"], None),  # the same file once: fine
    ]
    for inputs, pattern in cases:
        out.unlink(missing_ok=True)
        if pattern is None:
            merge(inputs, out)
            assert_valid_prov(out)
            continue
        with pytest.raises(MergeError, match=pattern):
            merge(inputs, out)
        assert not out.exists()
    copy = tmp_path / "copy.json"
    shutil.copy(sample_run / "prov.rank0.json", copy)
    with pytest.raises(MergeError, match="both rank 0"):
        merge([sample_run / "prov.rank0.json", copy], out)
    assert merge([sample_run, run2.run_dir], out, force=True).run_ids == sorted([sample_run.name, run2.run_id])
    assert_valid_prov(out)


def test_merging_runs_whose_ids_are_no_safe_names_gives_valid_prov(sample_run, tmp_path):
    inputs = []
    for n, run_id in enumerate(("a b/../c", "d\\e")):
        doc = json.loads((sample_run / "prov.rank0.json").read_text())
        run = next(v for v in doc["activity"].values() if v.get("yprov:run_id"))
        run["yprov:run_id"] = run_id
        inputs.append(tmp_path / f"doc{n}.json")
        inputs[-1].write_text(json.dumps(doc))
    result = merge(inputs, tmp_path / "merged.json", force=True)
    assert result.run_ids == sorted(["a b/../c", "d\\e"])
    assert_valid_prov(tmp_path / "merged.json")
