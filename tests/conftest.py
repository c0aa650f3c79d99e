"""Shared fixtures: a clean active-run state, a provenance directory, and validity checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml import api
from yprov4ml.prov.validate import validate_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_run_left_active():
    """A test that fails mid-run must not leave its run active for the next test."""
    yield
    run = api.active_run()
    if run is not None:
        api.finish(run, "FAILED", "left active by a test")


@pytest.fixture
def save_dir(tmp_path: Path) -> Path:
    return tmp_path / "prov"


# Attribute names the tests themselves pass to log calls (upstream's other_attrs, a manager's free attributes):
# the user's names, not the vocabulary's.
USER_ATTRIBUTE_NAMES = {"owner", "note", "split", "hash"}


def assert_valid_prov(path: Path) -> dict:
    """The file passes the prov round-trip (same record count) and the W3C schema, and every yprov: term it
    uses is defined by the vocabulary."""
    report = validate_file(path)
    assert report.ok, f"{path}: {report.problems()}"
    assert report.json_records > 0
    assert set(report.undefined_terms) <= USER_ATTRIBUTE_NAMES, f"{path}: not in vocabulary.ttl: " \
        f"{sorted(set(report.undefined_terms) - USER_ATTRIBUTE_NAMES)}"
    return json.loads(Path(path).read_text())


def run_script(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a Python script in a fresh interpreter; fail with its output if it fails."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def only_run_dir(save_dir: Path, experiment: str) -> Path:
    runs = [p for p in (save_dir / experiment).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def killed_then_recovered(tmp_path: Path, calls: str, experiment: str = "killed") -> Path:
    """Run ``calls`` after start_run in a process that is then killed (os._exit), recover the run directory
    with the CLI, and return it."""
    script = (f"import os, yprov4ml; yprov4ml.start_run('x.org', {experiment!r}, r'{tmp_path / 'prov'}'); "
              f"{calls}; os._exit(9)")
    subprocess.run([sys.executable, "-c", script], timeout=60)
    run_dir = only_run_dir(tmp_path / "prov", experiment)
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "recover", str(run_dir)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.fixture
def recorded_run(save_dir: Path):
    """A small finished run with params, metrics in two contexts, an artifact and two model versions."""
    torch = pytest.importorskip("torch")
    run = yprov4ml.start_run("www.example.org", "fixture", save_dir, save_after_n_logs=7)
    yprov4ml.log_params({"lr": 0.01, "epochs": 3, "optimizer": "adam", "use_amp": False})
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    for epoch in range(3):
        for step in range(10):
            yprov4ml.log_metric("loss", 1.0 / (1 + epoch * 10 + step), yprov4ml.Context.TRAINING, epoch * 10 + step)
        yprov4ml.log_metric("val_loss", 0.5 - 0.1 * epoch, yprov4ml.Context.VALIDATION, epoch)
        yprov4ml.save_model_version(model, "mlp", yprov4ml.Context.TRAINING, epoch)
    notes = save_dir.parent / "notes.txt"
    notes.write_text("hello provenance\n")
    yprov4ml.log_artifact(notes, yprov4ml.Context.EVALUATION)
    path = yprov4ml.end_run(create_graph=True)
    return run, path


NO_SKIPS = "YPROV4ML_NO_SKIPS"  # set by .ci/run: there, every environment the tests need is installed


def _skip_as_failure(report, what: str) -> None:
    """Under $YPROV4ML_NO_SKIPS=1 a skipped report becomes a failure naming why it skipped."""
    if report.skipped and os.environ.get(NO_SKIPS) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{what}, and ${NO_SKIPS}=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under $YPROV4ML_NO_SKIPS=1 a skipped test fails: a missing tool must not turn CI green."""
    outcome = yield
    _skip_as_failure(outcome.get_result(), "skipped")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a module skipped whole (a module-level ``pytest.importorskip``): an error, not a skip."""
    outcome = yield
    _skip_as_failure(outcome.get_result(), "a whole module skipped")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """The example pipeline, end to end: preprocess → train under mpiexec -n 2 → evaluate."""
    out = tmp_path_factory.mktemp("pipeline") / "out"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "pipeline.py"), "--out", str(out),
                           "--epochs", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid provenance-run-crate-0.5, RECOMMENDED (0 issues)" in done.stdout, done.stdout
    assert "valid workflow-ro-crate-1.0, RECOMMENDED (0 issues)" in done.stdout and "NOT valid" not in done.stdout
    graph_line = next(line for line in done.stdout.splitlines() if line.startswith("graph: "))
    assert graph_line.endswith(".svg" if shutil.which("dot") else ".dot")  # the picture itself, when there is one
    return out


SLURM_SETUP = ROOT / "hpc" / "local_slurm.sh"


def pytest_collection_modifyitems(config, items):
    """Every test that needs the local Slurm cluster is marked ``slurm``: ``pytest -m 'not slurm'`` leaves
    out the cluster (which, run as root, the suite installs and starts)."""
    for item in items:
        if "slurm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A two-node Slurm cluster on this host (hpc/local_slurm.sh), shared by the tests that need one."""
    if os.geteuid() != 0 or not (shutil.which("apt-get") or shutil.which("slurmctld")):
        pytest.skip("a local Slurm cluster needs root and apt (Debian's slurm-wlm and munge)")
    state = tmp_path_factory.mktemp("slurm-state")
    started = subprocess.run([str(SLURM_SETUP), "start", str(state)], capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "PYTHON": sys.executable,
           "PROJECT_DIR": str(ROOT), "SRUN_EXTRA": "--overcommit", "YPROV4ML_COLLECTION_TIMEOUT": "60",
           # pip's MPICH 5.0.2 (ch4:ucx) sometimes fails MPI_Init under srun --mpi=pmi2 while setting up
           # several virtual communication interfaces ("Message truncated" in MPIDI_UCX_comm_set_vcis); one is enough
           "MPIR_CVAR_CH4_NUM_VCIS": "1"}
    yield env
    subprocess.run([str(SLURM_SETUP), "stop", str(state)], timeout=60)


def slurm_diagnostics(env: dict, *logs: Path) -> str:
    """What a failed Slurm test shows: the job's own logs, the daemons' last lines, what else runs, free disk
    (a CI run leaves nothing else behind to read)."""
    parts = []
    for log in [*logs, *sorted(Path(env["SLURM_CONF"]).parent.glob("log/*.log"))]:
        if log.is_file():
            lines = log.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {log} (last {len(lines)} lines)\n" + "\n".join(lines))
    for command in (["squeue", "-a"], ["ps", "-eo", "pid,ppid,pcpu,rss,etime,args", "--sort=-pcpu"], ["df", "-h", "/tmp"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=10)
            text = done.stdout + done.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            text = str(exc)
        parts.append(f"--- {' '.join(command)}\n" + "\n".join(line[:200] for line in text.splitlines()[:25]))
    keys = sorted(k for k in env if k.startswith(("PMI", "PMIX", "HYDRA", "MPI", "UCX", "OMPI", "SLURM")))
    parts.append("--- MPI/Slurm variables handed to the job: " + ", ".join(keys))
    return "\n".join(parts)
