"""The run index, search_runs and lineage over real runs and a real workflow (issue 30, items 1-3 and 6)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import yprov4ml
from yprov4ml.integrations.mlflow_names import param_text
from yprov4ml.prov.reader import load_run
from yprov4ml.search.index import default_index_path, refresh

from conftest import run_script

def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


LRS = [0.1, 0.01, 0.001]
OPTIMIZERS = ["adam", "sgd", "it's \"odd\" <script>"]


def _sweep(root: Path, count: int = 24) -> list[Path]:
    """Real runs: params that vary, a loss series per run, some in a validation context, run 5 failed."""
    paths = []
    for i in range(count):
        try:
            with yprov4ml.start_run("www.example.org", f"sweep{i % 2}", root) as run:
                yprov4ml.log_params({"lr": LRS[i % 3], "optimizer": OPTIMIZERS[i % 3], "epochs": i % 4 + 1})
                for step in range(i % 5 + 1):
                    yprov4ml.log_metric("loss", 1.0 / (i + step + 1), "training", step)
                if i % 3 == 0:
                    yprov4ml.log_metric("accuracy", i / count, "validation", 0)
                if i == 5:
                    raise RuntimeError("diverged")
        except RuntimeError:
            pass
        paths.append(run.run_dir / "prov.rank0.json")
    return paths


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    _sweep(root / "prov")
    report = refresh(root)
    assert report.read == 24 and not report.failed
    return root


# ------------------------------------------------------------------ search equals a scan of the documents

def _brute_force(views, clauses) -> set[str]:
    """The runs a conjunction of (kind, key, aggregate, op, value) holds for, read from the runs themselves."""
    def value_of(view, kind, key, aggregate):
        if kind == "param":
            return view.params.get(key)
        if kind == "metric":
            series = [d for (k, _), d in view.metrics.items() if k == key]
            if not series:
                return None
            values = series[0].values
            return {"last": values[-1], "min": min(values), "max": max(values), "count": len(values)}[aggregate]
        return {"status": view.status, "experiment": view.experiment}[key]

    def holds(view, clause):
        kind, key, aggregate, op, wanted = clause
        found = value_of(view, kind, key, aggregate)
        if found is None:
            return False
        if kind == "param" and isinstance(wanted, str):
            found = param_text(found)
        elif kind == "param" and not isinstance(found, (int, float)):
            return False
        return {"=": found == wanted, "!=": found != wanted, "<": found < wanted, "<=": found <= wanted,
                ">": found > wanted, ">=": found >= wanted}[op]

    return {v.run_id for v in views if all(holds(v, c) for c in clauses)}


def _text(clause) -> str:
    kind, key, aggregate, op, value = clause
    written = f"'{value}'" if isinstance(value, str) else repr(value)
    if kind == "param":
        return f"params.{key} {op} {written}"
    if kind == "metric":
        return f"metrics.{key}.{aggregate} {op} {written}"
    return f"attributes.{key} {op} {written}"


CLAUSES = st.one_of(
    st.tuples(st.just("param"), st.just("lr"), st.just(""), st.sampled_from(["=", "!="]),
              st.sampled_from(["0.1", "0.01", "0.5"])),
    st.tuples(st.just("param"), st.just("epochs"), st.just(""), st.sampled_from(["<", ">=", "="]),
              st.sampled_from([1.0, 2.0, 3.0])),
    st.tuples(st.just("metric"), st.sampled_from(["loss", "accuracy"]), st.sampled_from(["last", "min", "max", "count"]),
              st.sampled_from(["<", "<=", ">", ">="]), st.sampled_from([0.05, 0.1, 0.3, 2.0, 3.0])),
    st.tuples(st.just("attribute"), st.sampled_from(["status", "experiment"]), st.just(""),
              st.sampled_from(["=", "!="]), st.sampled_from(["FINISHED", "FAILED", "sweep0"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clauses=st.lists(CLAUSES, min_size=1, max_size=3))
def test_search_equals_a_scan_of_every_run(sweep, clauses):
    views = [load_run(p.parent) for p in sorted(sweep.glob("prov/*/*/prov.rank0.json"))]
    expression = " and ".join(_text(c) for c in clauses)
    found = yprov4ml.search_runs(sweep, expression, refresh_index=False)
    assert {s.run_id for s in found.summaries} == _brute_force(views, clauses), expression


def test_search_orders_filters_and_returns_run_views(sweep):
    found = yprov4ml.search_runs(sweep, "params.lr = '0.01' and metrics.loss < 0.2", order_by=["metrics.loss DESC"])
    losses = [view.metric("loss").values[-1] for view in found]
    assert losses == sorted(losses, reverse=True) and len(losses) == 7  # run 1's last loss is 1/3
    assert all(view.params["lr"] == 0.01 for view in found)  # RunViews read from the run directories
    (failed,) = yprov4ml.search_runs(sweep, "attributes.status = 'FAILED'")
    assert failed.status == "FAILED"
    with_accuracy = yprov4ml.search_runs(sweep, "metrics.accuracy@validation >= 0 and context = 'validation'")
    assert len(with_accuracy) == 8
    assert len(yprov4ml.search_runs(sweep, "metrics.accuracy@training >= 0")) == 0  # the context is matched
    odd = yprov4ml.search_runs(sweep, """params.optimizer = 'it''s "odd" <script>'""")
    assert len(odd) == 8 and odd[0].params["optimizer"] == OPTIMIZERS[2]
    assert len(yprov4ml.search_runs(sweep, "params.optimizer LIKE 'AD%'")) == 0  # LIKE is case-sensitive
    assert len(yprov4ml.search_runs(sweep, "params.optimizer ILIKE 'AD%'")) == 8
    assert len(yprov4ml.search_runs(sweep, "params.optimizer IN ('adam', 'sgd') or params.epochs = 4")) == 16 + 2
    assert len(yprov4ml.search_runs(sweep, "params.missing IS NULL")) == 24
    assert len(yprov4ml.search_runs(sweep, "", max_results=5)) == 5
    newest_first = [s.start_time for s in yprov4ml.search_runs(sweep).summaries]
    assert newest_first == sorted(newest_first, reverse=True)  # MLflow's default order


def test_a_filter_that_does_not_parse_names_the_place_and_what_was_expected(sweep):
    for expression, expected in [("params.lr = ", "position 13, expected a value"),
                                 ("metrics.loss < 0.1 and", "expected params.NAME, metrics.NAME"),
                                 ("attributes.colour = 'red'", "expected an attribute: "),
                                 ("metrics.loss = 'low'", "is a number; compare it with a number"),
                                 ("params.lr == '0.1'", "expected a value"),
                                 ("(metrics.loss < 1", "expected ')'"),
                                 ("params.`lr = 1", "expected a closing `")]:
        with pytest.raises(yprov4ml.FilterSyntaxError, match=re.escape(expected)):
            yprov4ml.search_runs(sweep, expression, refresh_index=False)


def test_the_search_result_is_a_table_in_a_notebook_and_a_dataframe(sweep):
    found = yprov4ml.search_runs(sweep, "params.lr = '0.001'")  # the runs whose optimizer has quotes and a tag
    table = found._repr_html_()
    assert table.count("<tr>") == 1 + 8 and "params.optimizer" in table
    assert "<script>" not in table and "&lt;script&gt;" in table  # every value escaped
    view_html = found[0]._repr_html_()
    assert found[0].run_id in view_html and "loss" in view_html and "<script>" not in view_html
    frame = yprov4ml.search_runs(sweep, "params.lr = '0.1'", output_format="pandas", order_by="metrics.loss")
    assert list(frame["metrics.loss@training"]) == sorted(frame["metrics.loss@training"]) and len(frame) == 8
    assert set(frame["params.lr"]) == {0.1}


# ------------------------------------------------------------------ the index itself

def test_the_index_reads_again_only_what_changed_and_can_be_deleted(tmp_path):
    runs = _sweep(tmp_path / "prov", count=6)
    assert refresh(tmp_path).read == 6
    again = refresh(tmp_path)
    assert (again.read, again.unchanged, again.removed) == (0, 6, 0)
    os.utime(runs[0], None)  # touched, same bytes: hashed, not read again
    touched = refresh(tmp_path)
    assert touched.unchanged == 5 and len(yprov4ml.search_runs(tmp_path, refresh_index=False)) == 6
    shutil.rmtree(runs[1].parent)
    data = json.loads(runs[2].read_text())  # a run whose document changed: its new status is found
    run_activity = next(k for k, v in data["activity"].items() if "RunExecution" in json.dumps(v))
    data["activity"][run_activity]["yprov:status"] = "KILLED"
    runs[2].write_text(json.dumps(data))
    changed = refresh(tmp_path)
    assert (changed.read, changed.removed) == (1, 1)
    assert [v.run_dir for v in yprov4ml.search_runs(tmp_path, "attributes.status = 'KILLED'")] == [runs[2].parent]
    before = {s.run_id for s in yprov4ml.search_runs(tmp_path).summaries}
    default_index_path(tmp_path).unlink()
    assert {s.run_id for s in yprov4ml.search_runs(tmp_path).summaries} == before and len(before) == 5


def test_a_document_that_cannot_be_read_is_listed_never_fatal(tmp_path):
    _sweep(tmp_path / "prov", count=2)
    broken = tmp_path / "prov" / "broken" / "run-1"
    broken.mkdir(parents=True)
    (broken / "prov.rank0.json").write_text('{"prefix": {"yprov": "https://w3id.org/yprov4ml/ns#"}, "activity": [')
    (tmp_path / "notes.json").write_text('{"not": "provenance"}')  # no document of ours: not listed either
    report = refresh(tmp_path)
    assert [Path(p).parent for p, _ in report.failed] == [broken]
    assert "not" in report.failed[0][1].lower() or "json" in report.failed[0][1].lower()
    assert len(yprov4ml.search_runs(tmp_path, refresh_index=False)) == 2
    done = cli(["index", str(tmp_path), "--json"], cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["failed"][0]["path"].startswith(str(broken))


def _copies(root: Path, source: Path, count: int) -> None:
    for i in range(count):
        shutil.copytree(source, root / "copies" / f"run-{i:04d}")


INDEXER = "import sys; from yprov4ml.search.index import refresh; print(refresh(sys.argv[1]).documents)"


def test_two_indexers_at_once_and_a_killed_one_leave_a_usable_index(tmp_path):
    (run,) = _sweep(tmp_path / "one", count=1)
    root = tmp_path / "root"
    _copies(root, run.parent, 900)
    both = [subprocess.Popen([sys.executable, "-c", INDEXER, str(root)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0] and [o.strip() for o in outputs] == ["900", "900"]
    assert len(yprov4ml.search_runs(root, refresh_index=False)) == 900

    default_index_path(root).unlink()
    killed = subprocess.Popen([sys.executable, "-c", INDEXER, str(root)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once a first batch is in, before it is done
        try:
            with sqlite3.connect(default_index_path(root), timeout=5) as con:
                if con.execute("SELECT COUNT(*) FROM documents").fetchone()[0] > 0:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    with sqlite3.connect(default_index_path(root)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        assert kept % 200 == 0 or kept == 900  # whole batches only
    assert refresh(root).documents == 900 and len(yprov4ml.search_runs(root, refresh_index=False)) == 900


def test_a_copy_of_a_run_inside_a_merged_document_is_not_a_second_run(tmp_path):
    _sweep(tmp_path / "prov", count=3)
    experiment = tmp_path / "prov" / "sweep0"
    merged = cli(["merge", *map(str, experiment.glob("*/")),
                         "--force", "-o", str(tmp_path / "merged.json")], cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert refresh(tmp_path).documents == 4
    assert len(yprov4ml.search_runs(tmp_path)) == 3
    for run_dir in experiment.glob("*/"):  # the rank documents gone, the merged copies are the runs
        shutil.rmtree(run_dir)
    assert len(yprov4ml.search_runs(tmp_path)) == 3
    found = yprov4ml.search_runs(tmp_path, "attributes.experiment = 'sweep0'")
    assert len(found) == 2 and all(s.params["lr"] in LRS for s in found.summaries)
    assert {s.document for s in found.summaries} == {str(tmp_path / "merged.json")}
    with pytest.raises(yprov4ml.NotARunError, match="known only from its copy in .*merged.json"):
        found[0]  # a RunView reads the run directory, which is gone


# ------------------------------------------------------------------ lineage

WORKFLOW = """
import sys, yprov4ml
from pathlib import Path
from yprov4wfs_bridge import Workflow, build
out = Path(sys.argv[1])
(out / "raw.csv").write_text("x,y\\n1,2\\n")
with Workflow("pipeline", directory=out / "wf") as wf:
    raw = wf.data("raw", out / "raw.csv")
    with wf.task("prepare", inputs=[raw]) as prepare:
        (out / "clean.csv").write_text("x,y\\n1,2\\nclean\\n")
        clean = prepare.output("clean", out / "clean.csv")
    with wf.task("train", inputs=[clean]) as train:
        yprov4ml.start_run("www.example.org", "train", out / "prov")
        yprov4ml.log_artifact(out / "clean.csv", "training", is_input=True)
        (out / "model.bin").write_text("weights v1")
        yprov4ml.save_model_version(out / "model.bin", "net")
        (out / "model.bin").write_text("weights v2")
        yprov4ml.save_model_version(out / "model.bin", "net")
        train.attach(yprov4ml.end_run().parent)
        train.output("model", out / "model.bin")
    with wf.task("evaluate", inputs=[wf.data("model", out / "model.bin")]) as evaluate:
        (out / "scores.json").write_text("{}")
        evaluate.output("scores", out / "scores.json")
build(out / "wf", svg=False)
"""


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage")
    script = root / "pipeline.py"
    script.write_text(WORKFLOW)
    done = run_script([str(script), str(root)], cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_lineage_of_a_copied_file_reaches_across_tasks_and_runs(pipeline_root, tmp_path):
    copy = tmp_path / "elsewhere" / "my-model.bin"
    copy.parent.mkdir()
    shutil.copy(pipeline_root / "model.bin", copy)  # another path, the same bytes
    found = yprov4ml.lineage(copy, pipeline_root)
    makers = {(t.role, t.activity, t.task_id or t.run_id) for t in found.touches}
    run_id = load_run(next(pipeline_root.glob("prov/train/*/"))).run_id
    assert ("generated", "run", run_id) in makers and ("generated", "task", "train") in makers
    assert ("used", "task", "evaluate") in makers
    upstream = {label for r in found.upstream for label in r.labels}
    assert {"clean", "raw", "net v1"} <= upstream  # data through two tasks, the version it was derived from
    assert "scores" in {label for r in found.downstream for label in r.labels}
    near = yprov4ml.lineage(copy, pipeline_root, depth=1)
    assert "raw" not in {label for r in near.upstream for label in r.labels}  # two steps away
    done = cli(["lineage", found.sha256, str(pipeline_root),
                       "--json", "--depth", "1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == found.sha256
    text = cli(["lineage", str(pipeline_root / "raw.csv"),
                       str(pipeline_root)], cwd=tmp_path)
    assert "used      by task pipeline/prepare" in text.stdout and "downstream" in text.stdout


def test_runs_filter_on_the_command_line(sweep, tmp_path):
    done = cli(["runs", str(sweep), "--filter",
                       "params.lr = '0.001' and attributes.experiment = 'sweep0'", "--json"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert len(listed) == 4 and {line["experiment"] for line in listed} == {"sweep0"}
    bad = cli(["runs", str(sweep), "--filter", "params.lr ="],
                     cwd=tmp_path)
    assert bad.returncode == 2 and "position" in bad.stderr and "Traceback" not in bad.stderr


BIG_MERGED = """
import json, sys
from pathlib import Path
template = json.loads(Path(sys.argv[1]).read_text())
run_key = next(k for k, v in template["activity"].items() if "RunExecution" in json.dumps(v))
with open(sys.argv[2], "w") as out:
    out.write('{"prefix": {"yprov": "https://w3id.org/yprov4ml/ns#", "merged": "https://w3id.org/yprov4ml/run/big/"},'
              '\\n "bundle": {')
    rank, size = 0, 0
    while size < int(sys.argv[3]):
        template["activity"][run_key]["yprov:rank"] = {"$": str(rank), "type": "xsd:int"}
        template["activity"][run_key]["yprov:world_size"] = {"$": "65536", "type": "xsd:int"}
        text = json.dumps(template)
        out.write(("," if rank else "") + f'\\n  "merged:rank-{rank}": ' + text)
        size, rank = size + len(text), rank + 1
    out.write('}, "activity": {"merged:distributed": {"prov:type": {"$": "yprov:DistributedRun", "type": "xsd:QName"},'
              ' "yprov:run_id": "big"}}}')
print(rank)
"""
MEASURED_INDEX = """
import sys
from pathlib import Path
from yprov4ml.search.index import refresh
report = refresh(sys.argv[1])
# VmHWM: this process's own peak (ru_maxrss would keep the pytest process's peak across the exec)
peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
print(report.documents, len(report.failed), peak_kb // 1024)
"""


def test_a_300_mb_merged_document_is_indexed_one_bundle_at_a_time(tmp_path):
    (run,) = _sweep(tmp_path / "one", count=1)
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "make.py").write_text(BIG_MERGED)
    made = subprocess.run([sys.executable, str(tmp_path / "make.py"), str(run), str(root / "merged.json"),
                           str(300 * 2**20)], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    ranks = int(made.stdout)
    assert (root / "merged.json").stat().st_size > 300 * 2**20
    done = subprocess.run([sys.executable, "-c", MEASURED_INDEX, str(root)], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    documents, failed, peak_mb = map(int, done.stdout.split())
    assert (documents, failed) == (1, 0)
    assert peak_mb < 300  # parsed whole, its tree alone would take several times the file's 300 MB
    (found,) = yprov4ml.search_runs(root, refresh_index=False).summaries
    assert found.run_id == load_run(run.parent).run_id and found.ranks_found == ranks
