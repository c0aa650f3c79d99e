"""The validator itself: it accepts what prov writes and rejects what is not PROV-JSON."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path
import json

import jsonschema
import pytest
import prov.model as pm
from prov.serializers.provjson import encode_json_document

from yprov4ml.prov.validate import count_records, prov_json_schema, validate_document


def _doc_with_end() -> dict:
    doc = pm.ProvDocument()
    ex = doc.add_namespace("ex", "https://example.org/")
    act = doc.activity(ex["a"], datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    doc.wasEndedBy(act, doc.entity(ex["trigger"]))
    bundle = doc.bundle(ex["b"])
    bundle.entity(ex["inside"])
    return encode_json_document(doc)


def test_was_ended_by_is_accepted_despite_the_schema_typo():
    data = _doc_with_end()
    assert "wasEndedBy" in data
    raw = json.loads((__import__("pathlib").Path(pm.__file__).parent.parent / "tests" / "schemas" /
                      "prov-json.schema.json").read_text())
    assert list(jsonschema.Draft4Validator(raw).iter_errors(data)), "the shipped schema rejects wasEndedBy"
    report = validate_document(data)
    assert report.ok, report.problems()
    assert report.json_records == 4 == report.prov_records  # bundle contents counted


def test_unknown_top_level_keys_and_bad_values_are_rejected():
    data = _doc_with_end()
    typo = dict(data, wasEndedby={})  # the schema's spelling is not PROV-JSON: prov refuses it
    assert "wasEndedby" in validate_document(typo).prov_error
    data["entity"] = {"ex:x": {"ex:attr": {"no-dollar": 1}}}
    assert not validate_document(data).ok
    assert not validate_document({"prefix": {}, "entities": {}}).ok


def test_record_counting_sees_bundles():
    assert count_records({"prefix": {}, "entity": {"a": {}, "b": {}}, "bundle": {"x": {"activity": {"c": {}}}}}) == 3
    assert prov_json_schema()["properties"]["wasEndedBy"]


def test_the_fast_schema_check_agrees_with_jsonschema():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    raw_validator = jsonschema.Draft4Validator(prov_json_schema())
    from yprov4ml.prov.validate import schema_errors

    values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
                              st.sampled_from(["$", "type", "prov:entity", "ex:a", "entity", "lang"]), inner,
                              max_size=3), max_leaves=6)

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(st.sampled_from(["prefix", "entity", "activity", "used", "bundle", "wasEndedBy", "x"]),
                           st.dictionaries(st.text(max_size=4), values, max_size=2), max_size=3))
    def agree(doc):
        assert (not schema_errors(doc)) == raw_validator.is_valid(doc)

    agree()


def test_an_empty_object_is_no_valid_document():
    report = validate_document({})
    assert not report.ok and "no PROV record" in report.problems()[0]


def test_ci_turns_a_skip_into_a_failure(tmp_path):
    (tmp_path / "test_skips.py").write_text("import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no tool')\n")
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    env = {**os.environ, "YPROV4ML_NO_SKIPS": "1"}
    strict = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert strict.returncode == 1 and "forbids skips: Skipped: no tool" in strict.stdout, strict.stdout
    env.pop("YPROV4ML_NO_SKIPS")
    lenient = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert lenient.returncode == 0 and "1 skipped" in lenient.stdout


def test_fast_checks_refuse_what_prov_cannot_read_and_accept_a_default_namespace():
    from yprov4ml.errors import DocumentError
    from yprov4ml.prov.decode import checked_schema

    plain = {"prefix": {"default": "http://example.org/"}, "entity": {"e1": {"prov:label": "x"}}}
    assert checked_schema(Path("d.json"), plain) is plain  # valid PROV-JSON: unprefixed ids, default namespace
    assert validate_document(plain).ok
    for broken, why in ((dict(plain, prefix={}), "not a qualified name"),
                        ({"prefix": {"ex": ""}, "entity": {"ex:e": {}}}, "absolute IRI"),
                        ({"entity": {"ex:e": {}}}, "'ex'"),
                        ({"prefix": {"ex": "http://e/"}, "activity": {"ex:a": {"prov:startTime": False}}},
                         "not an xsd:dateTime")):
        with pytest.raises(DocumentError, match=why):
            checked_schema(Path("d.json"), broken)
        assert not validate_document(broken).ok  # prov agrees: each is unreadable


def _merged_record(tmp_path: Path) -> Path:
    """Three real runs merged into one document of three bundles (`yprov4ml merge --force`)."""
    import yprov4ml

    for lr in (0.1, 0.01, 0.001):
        with yprov4ml.start_run("www.example.org", "merged", tmp_path / "prov"):
            yprov4ml.log_param("lr", lr)
            for step in range(10):
                yprov4ml.log_metric("loss", lr / (step + 1), "training", step)
    output = tmp_path / "merged.json"
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "merge",
                           *map(str, sorted((tmp_path / "prov" / "merged").iterdir())), "--force", "-o", str(output)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return output


def test_a_large_document_is_checked_one_bundle_at_a_time_with_the_same_verdict(tmp_path, monkeypatch):
    from yprov4ml.prov.validate import validate_file
    from yprov4ml.storage import json_stream

    merged = _merged_record(tmp_path)
    whole = validate_file(merged)
    monkeypatch.setattr(json_stream, "STREAM_BYTES", 0)  # every document streamed, as one above 64 MiB is
    streamed = validate_file(merged)
    assert whole.ok and streamed.ok, (whole.problems(), streamed.problems())
    assert (streamed.json_records, streamed.prov_records) == (whole.json_records, whole.prov_records)

    data = json.loads(merged.read_text())
    broken_id = sorted(data["bundle"])[1]
    data["bundle"][broken_id]["entity"]["undeclared:thing"] = {}  # a prefix no one declared
    merged.write_text(json.dumps(data))
    found = validate_file(merged)
    assert not found.ok and f"bundle {broken_id}:" in found.problems()[0]  # the part that is wrong is named
    assert not validate_document(data).ok  # the same verdict as the whole document's check


def test_too_big_for_the_check_is_its_own_message_never_invalid(tmp_path, monkeypatch, capsys):
    from yprov4ml.prov import validate as validate_module
    from yprov4ml.storage import json_stream
    from yprov4ml.tools.cli import main

    merged = _merged_record(tmp_path)
    monkeypatch.setattr(json_stream, "STREAM_BYTES", 0)
    monkeypatch.setattr(validate_module, "MAX_PART_BYTES", 1024)  # one bundle is larger than the check holds
    assert main(["validate", str(merged)]) == 1
    said = capsys.readouterr().err
    assert "NOT CHECKED, too big for this check" in said and "bundle" in said and "INVALID" not in said
