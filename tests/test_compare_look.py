"""compare, plot, report (checked in headless Chromium), reproduce, and the Lightning logger — on real runs."""

from __future__ import annotations

import json
import shutil
import struct
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import yprov4ml

from conftest import ROOT, assert_valid_prov


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three runs of one experiment with different learning rates; the third lacks val_loss."""
    save = tmp_path_factory.mktemp("sweep")
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        with yprov4ml.start_run("www.example.org", "sweep", save):
            yprov4ml.log_params({"lr": lr, "epochs": 5})
            for step in range(20):
                yprov4ml.log_metric("loss", (1 + i) / (step + 1), yprov4ml.Context.TRAINING, step)
                yprov4ml.log_metric("cpu_power_w", 10.0 + step, yprov4ml.Context.TRAINING, step)
            if i < 2:
                yprov4ml.log_metric("val_loss", 0.5 * (1 + i), yprov4ml.Context.VALIDATION, 5)
    return save / "sweep"


def test_compare_an_experiment_directory(sweep):
    done = cli("compare", str(sweep), "--sort", "loss")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].count("sweep-") == 3
    assert any(line.startswith("param lr") for line in lines)
    assert "same in every run: epochs=5" in done.stdout
    assert "note: val_loss@validation is missing from 1 run(s)" in done.stdout
    data = json.loads(cli("compare", str(sweep), "--sort", "loss", "--json").stdout)
    assert data["params"]["lr"] == [0.1, 0.01, 0.001]  # sorted by final loss, smallest first
    assert data["metrics"]["loss@training"] == [1 / 20, 2 / 20, 3 / 20]
    assert data["metrics"]["val_loss@validation"][2] is None
    desc = json.loads(cli("compare", str(sweep), "--sort", "loss", "--desc", "--json").stdout)
    assert desc["params"]["lr"] == [0.001, 0.01, 0.1]


def test_compare_refuses_what_it_cannot_show(sweep, tmp_path):
    assert cli("compare", str(tmp_path)).returncode == 2
    bad_sort = cli("compare", str(sweep), "--sort", "nope")
    assert bad_sort.returncode == 2 and "no metric 'nope'" in bad_sort.stderr
    with yprov4ml.start_run("www.example.org", "other", tmp_path) as other:
        pass
    mixed = cli("compare", str(sweep), str(other.run_dir))
    assert mixed.returncode == 0 and "2 experiments" in mixed.stdout and "recorded no parameters" in mixed.stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_with_two_axes(sweep, tmp_path):
    out = tmp_path / "loss.png"
    done = cli("plot", str(sweep), "--metric", "loss", "--vs", "cpu_power_w", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert _png_size(out)[0] > 500
    svg = tmp_path / "val.svg"
    done = cli("plot", str(sweep), "--metric", "val_loss", "--x", "time", "-o", str(svg))
    assert done.returncode == 0 and "<svg" in svg.read_text()
    assert "has no metric val_loss" in done.stderr  # the third run: a note, not a failure
    assert cli("plot", str(sweep), "--metric", "nope", "-o", str(tmp_path / "x.png")).returncode == 2


def test_plot_one_curve_per_rank(tmp_path):
    for rank in (0, 1):
        with yprov4ml.start_run("www.example.org", "ranks", tmp_path, rank=rank, world_size=2, run_id="r",
                                collect_all_processes=True, collection_timeout_s=0.1):
            for step in range(5):
                yprov4ml.log_metric("loss", float(rank + step), step=step)
    from yprov4ml.tools.plot import labelled_views

    assert [label for label, _ in labelled_views([tmp_path / "ranks" / "r"])] == ["r rank 0", "r rank 1"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return found


def test_report_renders_in_headless_chromium_without_network(sweep, tmp_path):
    report = tmp_path / "report.html"
    assert cli("report", str(sweep), "-o", str(report)).returncode == 0
    text = report.read_text()
    import re

    # nothing to fetch: no script, no stylesheet link, no remote image or font (xmlns URIs are only names)
    assert not re.search(r"""(src|href)\s*=\s*["']https?://|<script|<link|@import|url\(\s*["']?http""", text)
    assert text.count("<svg") >= 4 and "lr" in text
    shot = tmp_path / "shot.png"
    done = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
                           "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr
    width, height = _png_size(shot)
    assert (width, height) == (1200, 2400)
    console_errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "ERR_NAME_NOT_RESOLVED" in line]
    assert console_errors == []
    pixels = zlib.decompress(b"".join(_chunks(shot.read_bytes(), b"IDAT")))
    assert len(set(pixels[::97])) > 5  # not a blank page


def _chunks(data: bytes, kind: bytes):
    pos = 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == kind:
            yield data[pos + 8:pos + 8 + length]
        pos += 12 + length


def test_reproduce_prints_and_runs_the_recipe(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys, yprov4ml\n"
                      "with yprov4ml.start_run('www.example.org', 'repro', sys.argv[1]):\n"
                      "    yprov4ml.log_param('lr', float(sys.argv[2]))\n"
                      "    yprov4ml.log_metric('loss', 1.0)\n")
    subprocess.run([sys.executable, str(script), str(tmp_path / "prov"), "0.3"], check=True, cwd=tmp_path)
    (run_dir,) = (tmp_path / "prov" / "repro").iterdir()
    done = cli("reproduce", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert f"train.py {tmp_path / 'prov'} 0.3" in done.stdout and "lr=0.3" in done.stdout
    assert "packages: " in done.stdout and "pinned: `yprov4ml reproduce RUN --requirements FILE`" in done.stdout
    script.write_text(script.read_text() + "# changed\n")
    assert "has changed since the run" in cli("reproduce", str(run_dir)).stdout
    rerun = cli("reproduce", str(run_dir), "--run")
    assert rerun.returncode == 0, rerun.stderr
    assert len(list((tmp_path / "prov" / "reproductions" / "repro").iterdir())) == 1  # the experiment ran again


def test_lightning_logger_records_a_real_trainer(tmp_path):
    pytest.importorskip("lightning")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "lightning_train.py"), "--epochs", "2",
                           "--save-dir", str(tmp_path / "prov")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "prov" / "lightning").iterdir()
    assert_valid_prov(run_dir / "prov.rank0.json")
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and view.params == {"lr": 0.05, "hidden": 16}
    contexts = {c for _, c in view.metrics}
    assert contexts == {"training", "validation", "evaluation"}
    train = view.metric("train_loss")
    assert train.steps == sorted(train.steps) and len(train) >= 4
    assert [m["model_name"] for m in view.models] and all(m["model_name"] == "checkpoint" for m in view.models)
    assert all(isinstance(m.get("step"), int) for m in view.models)  # the step the checkpoint was saved at
    assert {m["model_class"] for m in view.models} == {"checkpoint file"}


def test_lightning_failure_is_recorded(tmp_path):
    pytest.importorskip("lightning")
    from yprov4ml.integrations.lightning import YProv4MLLogger, context_of

    assert context_of("val_loss") == yprov4ml.Context.VALIDATION
    assert context_of("loss/val") == yprov4ml.Context.VALIDATION
    assert context_of("test_acc") == yprov4ml.Context.EVALUATION
    assert context_of("train_loss") == yprov4ml.Context.TRAINING
    logger = YProv4MLLogger(experiment_name="fails", provenance_save_dir=str(tmp_path))
    logger.log_hyperparams({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}})
    logger.log_metrics({"train_loss": 1.0, "epoch": 0}, step=0)
    logger.finalize("failed")
    view = yprov4ml.load_run(logger.experiment.run_dir)
    assert view.status == "FAILED" and view.params == {"optim.lr": 0.1, "optim.betas": [0.9, 0.99]}
    assert [k for k, _ in view.metrics] == ["train_loss"]


def test_lightning_ddp_records_one_document_per_rank(tmp_path):
    pytest.importorskip("lightning")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "lightning_ddp.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ids = {line.split()[2] for line in done.stdout.splitlines() if line.startswith("RANK")}
    assert len(ids) == 1  # both ranks agreed on the run (torch.distributed broadcast)
    run_dir = tmp_path / "ddp" / ids.pop()
    views = [yprov4ml.load_run(run_dir, rank=r) for r in (0, 1)]
    assert [v.world_size for v in views] == [2, 2] and {v.run["launcher"] for v in views} == {"torch.distributed"}
    assert all(len(v.metric("train_loss")) > 0 for v in views)
    job = assert_valid_prov(run_dir / "collection.json")["activity"]["run:distributed"]
    assert job["yprov:missing_ranks"] == "[]"
    assert job["yprov:coordinated_by"] == "torch.distributed"  # through the process group's store


def test_reproduce_reruns_a_relative_command_from_anywhere(tmp_path):
    (tmp_path / "project" / "scripts").mkdir(parents=True)
    (tmp_path / "project" / "scripts" / "train.py").write_text(
        "import yprov4ml\nwith yprov4ml.start_run('www.example.org', 'rel', 'prov'):\n"
        "    yprov4ml.log_metric('loss', 1.0)\n")
    # launched as the README does: a path relative to the working directory, outputs relative too
    subprocess.run([sys.executable, "scripts/train.py"], check=True, cwd=tmp_path / "project")
    (run_dir,) = (tmp_path / "project" / "prov" / "rel").iterdir()
    elsewhere, scratch = tmp_path / "elsewhere", tmp_path / "tmp"
    elsewhere.mkdir()
    scratch.mkdir()
    rerun = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "reproduce", str(run_dir), "--run"],
                           capture_output=True, text=True, timeout=300, cwd=elsewhere,
                           env={**os.environ, "TMPDIR": str(scratch)})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"in:       {tmp_path / 'project'}" in rerun.stdout
    # the re-run is filed beside the experiment, not in it (compare of the experiment does not count it) ...
    assert list((tmp_path / "project" / "prov" / "rel").iterdir()) == [run_dir]
    assert len(list((tmp_path / "project" / "prov" / "reproductions" / "rel").iterdir())) == 1
    assert list(scratch.iterdir()) == []  # ... and the materialised code is gone


def test_reproduce_writes_a_requirements_file_that_pins_the_build_it_ran_on(recorded_run, tmp_path):
    run, _ = recorded_run
    target = tmp_path / "requirements.txt"
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "reproduce", str(run.run_dir),
                           "--requirements", str(target)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = target.read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines and "torch==2.13.0+cpu" in lines
    plan_text = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "reproduce", str(run.run_dir)],
                               capture_output=True, text=True, timeout=120).stdout
    assert max(map(len, plan_text.splitlines())) < 400  # no 9,000-character package line
    assert "build:    torch==2.13.0+cpu (from https://download.pytorch.org/whl/cpu)" in plan_text


def test_reproduce_pins_packages_pip_can_install(recorded_run):
    from yprov4ml.tools.reproduce import recipe

    run, _ = recorded_run
    plan = recipe(run.run_dir)
    assert plan.packages["torch"] == "2.13.0"  # torch==2.13.0+cpu was recorded: no index has "+cpu"
    assert not any("+" in v for v in plan.packages.values())
    assert "yprov4ml" in plan.local_packages and "yprov4ml" not in plan.packages  # an editable install
    assert "local:    yprov4ml" in plan.text()


def _sweep(tmp_path):
    for lr in (0.1, 0.01):
        with yprov4ml.start_run("www.example.org", "sweep", tmp_path / "prov"):
            yprov4ml.log_params({"lr": lr, "epochs": 2})
            for epoch in range(2):
                for batch in range(3):  # per batch, but with step=epoch, as many scripts do
                    yprov4ml.log_metric("loss", lr * (10 - epoch * 3 - batch), step=epoch)
            yprov4ml.log_metric("accuracy", 0.9, yprov4ml.Context.EVALUATION, step=0)  # a single point
    return tmp_path / "prov" / "sweep"


def test_plot_legends_say_what_differs_and_repeated_steps_keep_every_point(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from yprov4ml.tools.plot import plot

    saved = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, *a, **k: saved.setdefault("figure", self))
    _, notes = plot([_sweep(tmp_path)], "loss", tmp_path / "p.png")
    axis = saved["figure"].axes[0]
    labels = sorted(line.get_label() for line in axis.get_lines())
    assert labels == ["loss — lr=0.01", "loss — lr=0.1"]  # not two run ids
    for line in axis.get_lines():
        assert list(line.get_xdata()) == [0, 1, 2, 3, 4, 5]  # six points, not two vertical strokes
    assert any("repeat" in n for n in notes) and "order of logging" in axis.get_xlabel()


def test_a_single_point_series_is_visible_in_the_report(tmp_path):
    from yprov4ml.tools.plot import labelled_views
    from yprov4ml.tools.report import _svg_of_metric

    svg = _svg_of_metric(labelled_views(sorted(_sweep(tmp_path).iterdir())), "accuracy@evaluation")
    import re

    # matplotlib defines each marker shape as <path id="m..."> (tick marks are such shapes too: two of them)
    assert len(re.findall(r'<path id="m[0-9a-f]+"', svg)) >= 3, "the single point has no marker: an empty axis"


def test_upstream_lightning_pattern_joins_the_scripts_run(tmp_path):
    """start_run, then Trainer(logger=[ProvMLLogger()]), then end_run: upstream 3.x's own pattern."""
    pytest.importorskip("lightning")
    script = tmp_path / "upstream_lightning.py"
    script.write_text(f"""
import lightning as L, torch, yprov4ml
from torch.utils.data import DataLoader, TensorDataset
from yprov4ml.integrations.lightning import ProvMLLogger

class Net(L.LightningModule):
    def __init__(self):
        super().__init__(); self.save_hyperparameters({{"lr": 0.1}}); self.lin = torch.nn.Linear(2, 1)
    def training_step(self, batch, i):
        loss = torch.nn.functional.mse_loss(self.lin(batch[0]), batch[1]); self.log("loss", loss); return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

run = yprov4ml.start_run("www.example.org", "upstream_lightning", r"{tmp_path / 'prov'}")
x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
trainer = L.Trainer(max_epochs=2, logger=[ProvMLLogger(prefix="fit")], accelerator="cpu", log_every_n_steps=1,
                    enable_progress_bar=False, enable_checkpointing=False, default_root_dir=r"{tmp_path}")
trainer.fit(Net(), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16))
yprov4ml.log_metric("after_fit", 1.0, "Training", 0)  # the run is still the script's, and still open
yprov4ml.end_run()
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "prov" / "upstream_lightning").iterdir()  # one run: the logger started none
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and view.params == {"lr": 0.1}
    # as upstream's logger does, the epoch Lightning passes with every call is a series too
    assert set(view.metrics) == {("fit-loss", "training"), ("fit-epoch", "training"), ("after_fit", "training")}
    assert len(view.metric("fit-loss")) == 8  # 4 batches × 2 epochs
    assert set(view.metric("fit-epoch").values) == {0.0, 1.0}


def test_built_in_contexts_are_found_whatever_the_case(save_dir):
    with yprov4ml.start_run("www.example.org", "cases", save_dir) as run:
        for name in ("Training", "training", "TRAINING", "train"):
            yprov4ml.log_metric("loss", 1.0, name)
        yprov4ml.log_metric("acc", 0.5, "Validation")
        yprov4ml.log_metric("acc", 0.6, "Test")
        yprov4ml.log_metric("acc", 0.7, "FineTune")
    view = yprov4ml.load_run(run.run_dir)
    assert len(view.metric("loss", "training")) == 4
    assert {c for _, c in view.metrics} == {"training", "validation", "evaluation", "FineTune"}
