"""Reproducing a run from its record alone: capture, re-run in a fresh directory, verify, record the verdict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml
from yprov4ml.capture.reproducibility import recorded_states
from yprov4ml.prov.reader import load_run

from conftest import assert_valid_prov

torch = pytest.importorskip("torch")

TRAIN = '''"""A seeded torch training run on data read from a file."""
import argparse, torch, yprov4ml
from model import make_model

parser = argparse.ArgumentParser()
parser.add_argument("--data", default="data.pt")
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()
torch.manual_seed(0)
data = torch.load(args.data)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data["x"], data["y"]), batch_size=16,
                                     shuffle=True)
with yprov4ml.start_run("www.example.org", "seeded", "prov"):
    yprov4ml.log_params({"epochs": args.epochs, "lr": 0.05})
    yprov4ml.log_dataset(loader, "train")
    model = make_model()
    optim = torch.optim.SGD(model.parameters(), lr=0.05)
    step = 0
    for epoch in range(args.epochs):
        for xb, yb in loader:
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            optim.zero_grad(); loss.backward(); optim.step()
            yprov4ml.log_metric("loss", loss.item(), "training", step)
            step += 1
'''

MODEL = '''import torch
def make_model():
    return torch.nn.Sequential(torch.nn.Linear(4, {width}), torch.nn.ReLU(), torch.nn.Linear({width}, 1))
'''


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def write_data(path: Path, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=generator)
    torch.save({"x": x, "y": x.sum(1, keepdim=True)}, path)


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def reproduce(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return python("-m", "yprov4ml.tools.cli", "reproduce", *args, cwd=cwd)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """A run recorded in a git repository with an uncommitted change; then the tree moves on (a new commit)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "me@example.org")
    git(repo, "config", "user.name", "me")
    (repo / "train.py").write_text(TRAIN)
    (repo / "model.py").write_text(MODEL.format(width=8))
    (repo / ".gitignore").write_text("prov/\ndata.pt\n")
    write_data(repo / "data.pt", seed=1)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    (repo / "model.py").write_text(MODEL.format(width=16))  # the run's code: not committed
    done = python("train.py", cwd=repo)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (repo / "prov" / "seeded").iterdir()
    (repo / "model.py").write_text(MODEL.format(width=32))  # the tree moves on
    git(repo, "commit", "-qam", "wider")
    return repo, run_dir


def test_the_record_keeps_code_seeds_and_data_fingerprints(recorded):
    repo, run_dir = recorded
    view = load_run(run_dir)
    source = view.source
    assert source["git_dirty"] is True and source["script_in_tree"] == "train.py"
    assert sorted(json.loads(source["snapshot_files"])) == ["model.py", "train.py"]
    assert "Linear(4, 16)" in (run_dir / "source" / "rank0" / "files" / "model.py").read_text()  # as it ran, not committed
    patch = (run_dir / source["uncommitted_patch"]).read_text()
    assert "-    return torch.nn.Sequential(torch.nn.Linear(4, 8)" in patch
    assert json.loads(view.randomness["rng_seeded"]) == ["torch"] and "determinism_warning" not in view.randomness
    assert view.randomness["rng_states"] == "journal.rank0.jsonl#rng_states"  # no file of their own
    states, _ = recorded_states(run_dir, 0)
    assert set(states) >= {"python", "torch"} and len(states["torch"]) == len(torch.get_rng_state())
    (dataset,) = view.datasets
    assert len(dataset["sha256"]) == 64 and dataset["fingerprint_of"] == "arrays"
    assert view.environment["torch_version"] == torch.__version__


def test_a_seeded_run_reproduces_after_the_tree_moved_on_and_says_so_in_its_record(recorded):
    repo, run_dir = recorded
    done = reproduce(str(run_dir), "--run", "--verify", cwd=repo.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REPRODUCED" in done.stdout and "uncommitted changes" in done.stdout
    new_dirs = list((repo / "prov" / "reproductions" / "seeded").iterdir())
    (new_dir,) = new_dirs
    document = new_dir / "prov.rank0.json"
    data = assert_valid_prov(document)
    verdict = data["entity"]["run:rank-0/verdict"]
    assert verdict["yprov:verdict"] == "reproduced"
    original = data["entity"]["run:rank-0/original-record"]
    assert original["prov:location"] == str(run_dir / "prov.rank0.json")
    assert any(u["prov:entity"] == "run:rank-0/original-record" and u["prov:activity"] == "run:rank-0"
               for u in data["used"].values())
    assert any(d["prov:usedEntity"].startswith("orig:rank-0/metric/training/")
               for d in data["wasDerivedFrom"].values())
    assert data["prefix"]["orig"].endswith(f"/{run_dir.name}/")
    assert load_run(document).metric("loss").values == load_run(run_dir).metric("loss").values


def test_changed_input_data_makes_verify_fail_naming_the_dataset(recorded):
    repo, run_dir = recorded
    write_data(repo / "data.pt", seed=2)
    done = reproduce(str(run_dir), "--run", "--verify", cwd=repo)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DIFFERS" in done.stdout
    assert "dataset train" in done.stdout and "fingerprint changed" in done.stdout
    assert "loss@training" in done.stdout and "diverged at step 0" in done.stdout
    (new_dir,) = list((repo / "prov" / "reproductions" / "seeded").iterdir())
    verdict = json.loads((new_dir / "prov.rank0.json").read_text())["entity"]["run:rank-0/verdict"]
    assert verdict["yprov:verdict"] == "differs" and "dataset train" in verdict["yprov:differences"]


UNSEEDED = '''import random, sys, yprov4ml
with yprov4ml.start_run("www.example.org", "unseeded", "prov"):
    for step in range(20):
        yprov4ml.log_metric("noise", random.random(), "training", step)
'''


def test_an_unseeded_run_cannot_promise_determinism_but_restored_states_repeat_it(tmp_path):
    (tmp_path / "noisy.py").write_text(UNSEEDED)
    assert python("noisy.py", cwd=tmp_path).returncode == 0
    (run_dir,) = (tmp_path / "prov" / "unseeded").iterdir()
    view = load_run(run_dir)
    assert "python random numbers were drawn without a seed" in view.randomness["determinism_warning"]
    said = reproduce(str(run_dir), cwd=tmp_path)
    assert said.returncode == 0 and "determinism cannot be promised" in said.stdout
    (tmp_path / "noisy.py").unlink()  # no git here: the run's own copy of its code is what runs
    done = reproduce(str(run_dir), "--run", "--verify", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recorded copy of the imported files" in done.stdout and "REPRODUCED" in done.stdout


def test_a_re_run_that_cannot_start_is_exit_2(recorded):
    repo, run_dir = recorded
    (repo / "data.pt").unlink()
    done = reproduce(str(run_dir), "--run", "--verify", cwd=repo)
    assert done.returncode == 2 and "recorded no run" in done.stdout, done.stdout + done.stderr
    assert reproduce(str(run_dir), "--verify", cwd=repo).returncode == 2  # --verify without --run


def test_venv_reproduction_installs_the_recorded_versions(recorded, tmp_path):
    repo, run_dir = recorded
    document = run_dir / "prov.rank0.json"
    data = json.loads(document.read_text())
    environment = data["entity"]["run:rank-0/environment"]
    packages = [p for p in json.loads(environment["yprov:packages"]) if not p.lower().startswith("six==")]
    environment["yprov:packages"] = json.dumps(packages + ["six==1.16.0", "no-such-package-yprov4ml-test==1.0"])
    document.write_text(json.dumps(data))  # as if the run had used six 1.16.0 and a package no index has
    venv = tmp_path / "venv"
    done = reproduce(str(run_dir), "--run", "--verify", "--venv", str(venv), cwd=repo)
    assert "1 package(s) could not be installed" in done.stdout and "no-such-package-yprov4ml-test==1.0" in done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    (new_dir,) = list((repo / "prov" / "reproductions" / "seeded").iterdir())
    again = load_run(new_dir).environment
    assert again["python_executable"] == str(venv / "bin" / "python")
    assert "six==1.16.0" in json.loads(again["packages"])


def test_fingerprints_follow_the_bytes_of_the_data(tmp_path):
    from yprov4ml.capture.datasets import fingerprint

    x = torch.arange(12.0).reshape(3, 4)
    same = fingerprint(torch.utils.data.TensorDataset(x.clone()))
    assert same == fingerprint(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.clone()), batch_size=2))
    assert same["sha256"] != fingerprint(torch.utils.data.TensorDataset(x + 1))["sha256"]
    assert fingerprint(x.to(torch.bfloat16))["sha256"] != fingerprint(x)["sha256"]  # dtype counts; any dtype works
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    with yprov4ml.start_run("www.example.org", "fp", tmp_path / "prov") as run:
        yprov4ml.log_dataset(str(data), "table")
    (dataset,) = load_run(run.run_dir).datasets
    assert dataset["fingerprint_of"] == "file" and dataset["path"] == str(data.resolve())
    assert os.path.getsize(data) == dataset["size_bytes"]


@pytest.mark.parametrize("where", ["journal", "legacy file"])
@pytest.mark.parametrize("content", ["[1, 2]", "{\"python\": [3, \"x\", null]}", "not json"])
def test_tampered_states_leave_the_re_run_unrestored_and_say_so(tmp_path, monkeypatch, content, where):
    original = tmp_path / "original"
    (original / "rng").mkdir(parents=True)
    if where == "journal":
        (original / "journal.rank0.jsonl").write_text('{"event": "start"}\n{"event": "rng_states", "states": '
                                                     f'{content}}}\n')
    else:  # runs of earlier releases kept them in a file of their own
        (original / "rng" / "states.rank0.json").write_text(content)
    monkeypatch.setenv("YPROV4ML_REPRODUCE_OF", str(original))
    with yprov4ml.start_run("www.example.org", "tampered", tmp_path / "prov") as run:
        yprov4ml.log_metric("loss", 1.0)
    randomness = load_run(run.run_dir).randomness
    expected = "journal.rank0.jsonl" if where == "journal" else "states.rank0.json"
    assert expected in randomness["rng_restore_problem"] and "rng_restored" not in randomness


MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich mpi4py)")
def test_a_two_rank_mpi_run_reproduces_rank_by_rank(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples" / "distributed_train.py"
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(example), "--epochs", "1", "--samples", "256"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "prov" / "distributed").iterdir()
    measured = [k for k, m in load_run(run_dir).metrics.items() if m.unit and k[1] == "training"]
    assert measured  # machine figures beside the results: they vary, and verify leaves them out
    again = reproduce(str(run_dir), "--run", "--verify", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("REPRODUCED") == 2 and "mpiexec" in again.stdout


def test_a_run_started_without_a_script_file_keeps_the_uncommitted_patch(tmp_path):
    """`python -c` (or a notebook) in a git tree with changes: no file of its own to copy, the patch all the same."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "model.py").write_text("WIDTH = 4\n")
    subprocess.run([*git, "add", "model.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=tmp_path, check=True)
    (tmp_path / "model.py").write_text("WIDTH = 8\n")  # uncommitted
    code = ("import yprov4ml\n"
            "with yprov4ml.start_run('www.example.org', 'inline', 'prov') as run:\n"
            "    yprov4ml.log_metric('loss', 1.0, step=0)\n"
            "print(run.run_dir)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    source = load_run(run_dir).source
    assert "snapshot_error" not in source, source
    assert "WIDTH = 8" in (run_dir / source["uncommitted_patch"]).read_text()
