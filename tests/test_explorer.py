"""The explorer (`yprov4ml ui`) in a real browser: Playwright driving the system Chromium over a real sweep
and a real Snakemake workflow with a nested training run and a failed job (issue 30, item 4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.explorer.charts import MAX_POINTS, downsample
from yprov4ml.explorer.server import make_server

from conftest import ROOT

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev install has it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BIN = Path(sys.executable).parent
HOSTILE = "it's \"odd\" <script>alert(1)</script>\nnext line ü"

SNAKEFILE = """
rule all:
    input: "model.txt", "broken.txt"

rule train:
    output: "model.txt"
    run:
        import yprov4ml
        with yprov4ml.start_run("www.example.org", "train", "prov"):
            yprov4ml.log_param("lr", 0.05)
            for step in range(40):
                yprov4ml.log_metric("loss", 1.0 / (step + 1), "training", step)
        open(output[0], "w").write("weights")

rule broken:
    output: "broken.txt"
    shell: "exit 7"
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A Snakemake workflow (a nested run, a failed job) and a sweep whose names are hostile, in one root."""
    workdir = tmp_path_factory.mktemp("explorer")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    done = subprocess.run([str(BIN / "snakemake"), "-s", str(workdir / "Snakefile"), "-d", str(workdir), "--cores",
                           "1", "--keep-going", "--logger", "yprov4wfs", "--logger-yprov4wfs-directory",
                           str(workdir / "provenance")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"})
    assert done.returncode != 0 and (workdir / "provenance" / "bundle.prov.json").is_file(), done.stderr[-3000:]
    for lr in (0.1, 0.01):
        yprov4ml.start_run("www.example.org", "sweep", workdir / "prov")
        yprov4ml.log_params({"lr": lr, "note": HOSTILE})
        for step in range(30):
            yprov4ml.log_metric("loss", lr / (step + 1), "training", step)
        yprov4ml.end_run()
    return workdir


@pytest.fixture(scope="module")
def site(root):
    server = make_server(root, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A page that fails the test on any console error, uncaught script error or dialog (an alert)."""
    problems: list[str] = []
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield tab
    tab.close()
    assert problems == []


def _shot(tab, name: str, tmp_path: Path) -> None:
    """A screenshot of the page; with YPROV4ML_DOCS_SCREENSHOTS=DIR, docs/img's copy is made too."""
    target = tmp_path / f"explorer-{name}.png"
    tab.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000  # a drawn page, not a blank one
    if os.environ.get("YPROV4ML_DOCS_SCREENSHOTS"):
        shutil.copy(target, Path(os.environ["YPROV4ML_DOCS_SCREENSHOTS"]) / target.name)


def test_runs_page_filters_sorts_and_shows_hostile_names_literally(site, page, tmp_path):
    page.goto(site + "/")
    assert page.locator("table.runs tbody tr").count() == 3  # the workflow's training run and the sweep
    page.fill("input[name=filter]", "params.lr = '0.1'")
    page.click("form.filter button")
    page.wait_for_url("**filter=*")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 1 and "0.1" in rows.first.inner_text()
    assert HOSTILE.replace("\n", " ").split(" next")[0] in page.locator("table.runs").inner_text().replace("\n", " ")
    page.goto(site + "/")
    page.click("th a:text('status')")  # sorted by status
    statuses = [s.strip() for s in page.locator("table.runs tbody tr td:nth-child(3)").all_inner_texts()]
    assert statuses == sorted(statuses)
    page.fill("input[name=filter]", "metrics.loss <")
    page.click("form.filter button")
    assert "expected a value" in page.locator("pre.error").inner_text()
    assert page.locator("ul.workflows a").count() == 1
    _shot(page, "runs", tmp_path)


def test_run_page_draws_the_metrics_the_files_and_the_graph(site, page, tmp_path):
    page.goto(site + "/?filter=" + urllib.request.quote("params.lr = '0.01'"))
    page.click("table.runs tbody tr td a")
    page.wait_for_url("**/run?*")
    chart = page.locator("figure.chart").first
    assert "loss (training) — 30 point(s)" in chart.inner_text() and chart.locator("polyline").count() == 1
    assert HOSTILE.split("\n")[0] in page.locator("table.params").inner_text()
    page.click("text=by time")
    assert "seconds since the first point" in page.locator("figure.chart").first.inner_text()
    assert page.locator(".graph svg g.node").count() > 3  # the run's own PROV graph, laid out by Graphviz
    _shot(page, "run", tmp_path)


def test_workflow_page_shows_the_failed_task_and_opens_a_task_into_its_run(site, page, tmp_path):
    page.goto(site + "/")
    page.click("ul.workflows a")
    page.wait_for_url("**/workflow?*")
    broken = page.locator("table.tasks tr", has_text="broken")
    assert "FAILED" in broken.inner_text() and broken.locator(".status-failed").count() == 1
    assert page.locator("table.tasks tr", has_text="train").locator(".status-finished").count() == 1
    page.locator('.graph g.node[id^="task:train"]').click()  # a node's attributes in the panel (Snakemake's job id)
    panel = page.locator("#node-panel")
    assert "task:train-1" in panel.inner_text() and "FINISHED" in panel.inner_text()
    panel.locator("a.node-action", has_text="expand").click()
    page.wait_for_url("**expand=task*")
    run_node = page.locator('.graph g.node[id^="run:"]')
    assert run_node.count() == 1, (page.url, page.content()[-3000:])
    run_node.click()
    panel.locator("a.node-action", has_text="expand").click()  # the run into its ranks
    page.wait_for_url("**expand=run*")
    assert page.locator('.graph g.node[id^="rank:"]').count() == 1
    _shot(page, "workflow", tmp_path)
    page.locator('.graph g.node[id^="run:"]').click()
    panel.locator("a.node-action", has_text="open the run's page").click()
    page.wait_for_url("**/run?*")
    assert "loss (training) — 40 point(s)" in page.locator("figure.chart").first.inner_text()


def test_lineage_page_follows_a_file(site, page, root, tmp_path):
    page.goto(site + "/lineage")
    page.fill("input[name=target]", "model.txt")
    page.click("form.filter button")
    touches = page.locator("table.touches").inner_text()
    assert "generated" in touches and "train" in touches
    _shot(page, "lineage", tmp_path)


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_nothing_outside_the_root_is_served_and_nothing_is_written(site, root):
    for path in ("/file?path=../../../../etc/passwd", "/file?path=/etc/passwd", "/run?dir=..",
                 "/workflow?dir=../" + root.name, "/file?path=" + urllib.request.quote(str(root.parent))):
        assert _status(site + path) == 404, path
    assert _status(site + "/", method="POST") == 405
    with urllib.request.urlopen(site + "/", timeout=30) as answer:
        policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    with urllib.request.urlopen(site + "/file?path=provenance/bundle.prov.json", timeout=30) as answer:
        assert answer.headers["Content-Disposition"].startswith("attachment")
        assert answer.read() == (root / "provenance" / "bundle.prov.json").read_bytes()


def test_a_million_points_reach_the_page_as_at_most_two_thousand_with_their_extremes():
    ys = [1.0] * 1_000_000
    ys[123_456], ys[777_777] = -5.0, 9.0
    xs, kept = downsample(list(range(len(ys))), ys)
    assert len(kept) <= MAX_POINTS and min(kept) == -5.0 and max(kept) == 9.0
    assert xs == sorted(xs) and 123_456 in xs and 777_777 in xs


def test_ui_binds_to_this_machine_by_default(tmp_path):
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "ui", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "default 127.0.0.1" in done.stdout
    server = make_server(tmp_path, port=0, quiet=True)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_a_workflow_report_and_the_pictures_mark_what_failed(root, tmp_path):
    """`yprov4ml report WF_DIR` (issue 30, item 5): tasks, status, durations, the runs' key metrics, the
    picture; the bridge's static picture and a run's own mark a failed task, workflow and run."""
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "report", str(root / "provenance"), "-o",
                           str(tmp_path / "wf.html")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "wf.html").read_text()
    broken = next(row for row in page.split("<tr>") if row.startswith("<td>broken"))
    assert "class='FAILED'" in broken and "exit status 7" in broken
    train = next(row for row in page.split("<tr>") if row.startswith("<td>train"))
    assert "class='FINISHED'" in train and "loss@training = 0.025" in train  # its run's last loss, 1/40
    assert "1 FAILED, 1 FINISHED" in page and "<svg" in page and "<script" not in page
    picture = (root / "provenance" / "graph.dot").read_text()
    assert '"task broken-2 — FAILED"' in picture and '"task train-1"' in picture and "— FINISHED" not in picture
    at = picture.index('"task broken-2 — FAILED"')
    assert "#F6C6C6" in picture[at:at + 200] and "#B00000" in picture[at:at + 200]  # its fill and its border
    assert "workflow" in picture.split("— FAILED")[0]  # the workflow is marked too

    with pytest.raises(RuntimeError):
        with yprov4ml.start_run("www.example.org", "broken", tmp_path / "prov"):
            raise RuntimeError("diverged")
    run_dir = next((tmp_path / "prov" / "broken").iterdir())
    drawn = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "graph", str(run_dir), "-o",
                            str(tmp_path / "run.dot")], capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr
    assert f"run {run_dir.name} — FAILED" in (tmp_path / "run.dot").read_text()
