"""Each install a user can choose, in a fresh virtual environment of its own: the plain library says which
extra a command needs (never a traceback), and each workflow manager's extra finishes its documented record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT_S = 900  # from pip's cache a few seconds; from the registry a few minutes


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project as a wheel, built once: what `pip install .` installs."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    return next(out.glob("yprov4ml-*.whl"))


def fresh_venv(where: Path, wheel: Path, extra: str = "") -> Path:
    """A new virtual environment holding the project with ``extra`` (nothing else); its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    done = subprocess.run([str(where / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", requirement],
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "bin"


RECORD_A_RUN = """
import sys, yprov4ml
with yprov4ml.start_run("www.example.org", "plain", sys.argv[1]):
    for step in range(3):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), yprov4ml.Context.TRAINING, step)
"""


def test_a_plain_install_names_the_extra_each_command_needs(tmp_path, wheel):
    bin_dir = fresh_venv(tmp_path / "venv", wheel)
    script = tmp_path / "record.py"
    script.write_text(RECORD_A_RUN)
    subprocess.run([str(bin_dir / "python"), str(script), str(tmp_path / "prov")], check=True, timeout=120)
    run = tmp_path / "prov" / "plain" / "latest"
    fake_crate = tmp_path / "a-crate"
    fake_crate.mkdir()
    (fake_crate / "ro-crate-metadata.json").write_text("{}")
    workflow = tmp_path / "wf"
    python = bin_dir / "python"
    subprocess.run([str(python), "-c", "import sys; from yprov4wfs_bridge import Workflow\n"
                    "with Workflow('wf', sys.argv[1]) as wf:\n"
                    "    with wf.task('t'): pass", str(workflow)], check=True, timeout=120)
    expected = {
        ("yprov4ml", "plot", str(run), "--metric", "loss", "-o", str(tmp_path / "p.png")): "plots",
        ("yprov4ml", "report", str(run), "-o", str(tmp_path / "r.html")): "plots",
        ("yprov4ml", "crate", str(run)): "crate",
        ("yprov4ml", "validate", str(fake_crate)): "crate",
        ("yprov4ml", "convert", str(next((tmp_path / "prov" / "plain").glob("*/prov.rank0.json"))),
         "--to", "turtle"): "convert",
        ("yprov4wfs-bridge", "build", str(workflow), "--no-svg"): "crate",
    }
    for (command, *arguments), extra in expected.items():
        done = subprocess.run([str(bin_dir / command), *arguments], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (arguments, done.stderr)
        assert f"pip install 'yprov4ml[{extra}]'" in done.stderr, (arguments, done.stderr)
    shown = subprocess.run([str(bin_dir / "yprov4ml"), "show", str(run)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "loss@training" in shown.stdout  # what needs no extra works


PARSL_SNIPPET = """
import sys
import parsl
from parsl.app.app import python_app
from parsl.config import Config
from parsl.executors.threads import ThreadPoolExecutor
from yprov4wfs_bridge.managers.parsl import record

@python_app
def double(x):
    return 2 * x

with parsl.load(Config(executors=[ThreadPoolExecutor(max_threads=2)])):
    recorder = record(sys.argv[1], "my-pipeline")   # the one line of docs/workflow-managers.md
    assert double(double(1).result()).result() == 4
"""


def test_the_parsl_extra_alone_finishes_the_documented_record(tmp_path, wheel):
    bin_dir = fresh_venv(tmp_path / "venv", wheel, "parsl")
    script = tmp_path / "pipeline.py"
    script.write_text(PARSL_SNIPPET)
    done = subprocess.run([str(bin_dir / "python"), str(script), str(tmp_path / "provenance")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    crate = json.loads((tmp_path / "provenance" / "crate" / "ro-crate-metadata.json").read_text())
    tasks = [e["@id"] for e in crate["@graph"] if e.get("@type") == "CreateAction" and "double" in e["@id"]]
    assert len(tasks) == 2, tasks  # the two app calls, each a task


SNAKEFILE = """
rule all:
    input: "out.txt"

rule write:
    output: "out.txt"
    shell: "echo hello > {output}"
"""


def test_the_snakemake_extra_alone_finishes_the_documented_record(tmp_path, wheel):
    bin_dir = fresh_venv(tmp_path / "venv", wheel, "snakemake")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    done = subprocess.run([str(bin_dir / "snakemake"), "--cores", "1", "--logger", "yprov4wfs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "could not be finished" not in done.stderr, done.stderr[-3000:]
    crate = json.loads((tmp_path / "provenance" / "crate" / "ro-crate-metadata.json").read_text())
    assert any(e.get("@type") == "CreateAction" for e in crate["@graph"])
