"""What a new user meets first: the README's example, the CLI's help and listings, comparisons and plots that
lead with the user's own metrics, a short summary of a build."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import yprov4ml

from conftest import ROOT


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def readme_example() -> str:
    """The Python block of the README's first example, as a user would paste it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A first run", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_as_pasted_and_writes_what_its_comment_names(tmp_path):
    pytest.importorskip("torch")
    code = readme_example()
    (tmp_path / "first_run.py").write_text(code)
    done = subprocess.run([sys.executable, "first_run.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    comment = next(line for line in code.splitlines() if line.startswith("print(run.run_dir)"))
    named = re.findall(r"[\w.]+/?(?=,|$)", comment.split(":", 1)[1])
    assert len(named) >= 4, comment
    for name in named:
        assert (run_dir / name.rstrip("/")).exists(), f"the README names {name}, which the run does not hold"
    view = yprov4ml.load_run(run_dir)
    assert view.status == "FINISHED" and len(view.metric("loss")) == 3 and len(view.models) >= 1


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


class _Captured(Exception):
    pass


def _parser_of(main, monkeypatch) -> argparse.ArgumentParser:
    """The parser a ``main`` builds for itself, caught at its parse_args."""
    def capture(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured) as caught:
        main(["x"])
    monkeypatch.undo()
    return caught.value.args[0]


def test_every_command_and_option_says_what_it_is_for(monkeypatch):
    from yprov4ml.distributed.merge import build_parser as merge_parser
    from yprov4ml.tools import pol, recover
    from yprov4ml.tools.cli import build_parser
    from yprov4wfs_bridge import cli as bridge

    parsers = [*_parsers(build_parser(), "yprov4ml"), *_parsers(merge_parser(), "yprov4ml merge"),
               ("yprov4ml recover", _parser_of(recover.main, monkeypatch)),
               ("yprov4ml pol", _parser_of(pol.main, monkeypatch)),
               *_parsers(_parser_of(bridge.main, monkeypatch), "yprov4wfs-bridge")]
    silent = []
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                silent += [f"{name} {choice.dest}" for choice in action._choices_actions if not choice.help]
            elif not action.help:
                silent.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert len(parsers) > 20
    assert silent == []


@pytest.mark.parametrize("command", [["yprov4ml.tools.cli"], ["yprov4wfs_bridge.cli"]])
def test_version_is_printed(command):
    done = subprocess.run([sys.executable, "-m", *command, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and yprov4ml.__version__ in done.stdout


def test_export_help_shows_both_forms():
    done = cli("export", "--help")
    assert done.returncode == 0
    assert "--format csv|netcdf|zarr|parquet" in done.stdout and "export mlflow RUN" in done.stdout


@pytest.fixture(scope="module")
def machine_runs(tmp_path_factory):
    """Two runs as a machine without GPU records them: the user's loss and accuracy, the system's load and
    an energy figure, and a GPU series that is zero throughout."""
    save = tmp_path_factory.mktemp("machine")
    for lr, scale in ((0.1, 1.0), (0.01, 2.0)):
        with yprov4ml.start_run("www.example.org", "mnist", save):
            yprov4ml.log_params({"lr": lr, "epochs": 3})
            for step in range(3):
                yprov4ml.log_metric("disk_percent", 40.0 + step, yprov4ml.Context.TRAINING, step)
                yprov4ml.log_metric("gpu0_power_w", 0.0, yprov4ml.Context.TRAINING, step)
                yprov4ml.log_metric("cpu_power_w", 12.5 * scale, yprov4ml.Context.TRAINING, step)
                yprov4ml.log_metric("loss", scale / (step + 1), yprov4ml.Context.TRAINING, step)
                yprov4ml.log_metric("accuracy", 0.5 + 0.1 * step, yprov4ml.Context.VALIDATION, step)
    return save / "mnist"


def test_compare_leads_with_the_users_metrics_and_leaves_out_absent_devices(machine_runs):
    done = cli("compare", str(machine_runs))
    assert done.returncode == 0, done.stderr
    rows = [line.split("  ")[0] for line in done.stdout.splitlines()]
    assert rows.index("loss@training (last)") < rows.index("-- system --") < rows.index("disk_percent@training (last)")
    assert rows.index("accuracy@validation (last)") < rows.index("-- system --")
    assert rows.index("disk_percent@training (last)") < rows.index("-- energy --") < \
        rows.index("cpu_power_w@training (last)")
    assert "gpu0_power_w@training (last)" not in rows
    assert "left out, zero or absent in every run (no such device here): gpu0_power_w@training" in done.stdout
    only = json.loads(cli("compare", str(machine_runs), "--metric", "loss", "--metric", "acc*", "--json").stdout)
    assert list(only["metrics"]) == ["accuracy@validation", "loss@training"]
    assert only["groups"]["system"] == [] and only["groups"]["energy"] == []
    none = cli("compare", str(machine_runs), "--metric", "nope")
    assert none.returncode == 2 and "the runs have: " in none.stderr and "loss@training" in none.stderr


def test_the_report_folds_system_and_energy_plots_after_the_users(machine_runs, tmp_path):
    report = tmp_path / "report.html"
    assert cli("report", str(machine_runs), "-o", str(report)).returncode == 0
    text = report.read_text()
    first_user_plot = text.index("<svg")
    system = text.index("<details class='system'>")
    assert first_user_plot < system < text.index("<details class='energy'>")
    folded = text[system:text.index("</details>", system)]
    assert "disk_percent" in folded and "loss" not in folded
    assert "gpu0_power_w" not in text.split("class='note'")[0]  # only the note names it
    narrow = tmp_path / "loss.html"
    assert cli("report", str(machine_runs), "-o", str(narrow), "--metric", "loss").returncode == 0
    assert "<details" not in narrow.read_text() and "accuracy" not in narrow.read_text().split("<h2>Provenance")[0]


def _figure_of(monkeypatch, *args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from yprov4ml.tools.plot import plot

    saved = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, *a, **k: saved.setdefault("figure", self))
    plot(*args, **kwargs)
    figure = saved["figure"]
    figure.canvas.draw()  # tick labels and offsets are decided at drawing
    return figure


def test_plots_have_whole_step_ticks_plain_labels_a_readable_legend_and_distinct_vs_colours(tmp_path, monkeypatch):
    with yprov4ml.start_run("www.example.org", "big", tmp_path) as run:
        for step in range(3):  # three steps: matplotlib alone ticks 0, 0.25, 0.5, ...
            yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
            yprov4ml.log_metric("bytes", 45107000000.0 + step * 1000, step=step)  # alone: "+4.5107e10"
    figure = _figure_of(monkeypatch, [run.run_dir], "bytes", tmp_path / "p.png", vs="loss")
    axis, second = figure.axes
    ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert axis.yaxis.get_major_formatter().get_offset() == ""
    assert second.yaxis.get_major_formatter().get_offset() == ""
    legend = axis.get_legend()
    assert len(legend.get_texts()) == 2 and min(t.get_fontsize() for t in legend.get_texts()) >= 9
    colours = {line.get_color() for line in axis.get_lines() + second.get_lines()}
    assert len(colours) == 2
    assert second.get_lines()[0].get_linestyle() == "--" and "dashed" in second.get_ylabel()


def test_plot_of_a_metric_a_run_lacks_lists_those_it_has(machine_runs, tmp_path):
    done = cli("plot", str(machine_runs), "--metric", "val_loss", "-o", str(tmp_path / "x.png"))
    assert done.returncode == 2
    assert "they have: " in done.stderr and "accuracy@validation" in done.stderr and "loss@training" in done.stderr


def test_runs_lists_one_line_per_run_and_latest_names_the_newest(machine_runs):
    done = cli("runs", str(machine_runs))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("FINISHED" in line and "1 rank" in line for line in lines)
    assert "lr=0.1" in lines[0] and "lr=0.01" in lines[1]  # oldest first; lr differs, epochs does not
    assert "epochs" not in done.stdout and "loss@training=" in lines[0] and "disk_percent" not in done.stdout
    listed = json.loads(cli("runs", str(machine_runs), "--sort", "loss", "--desc", "--json").stdout)
    assert [line["params"]["lr"] for line in listed] == [0.01, 0.1]  # the larger final loss first
    newest = listed[0]["run_id"]
    shown = json.loads(cli("show", str(machine_runs / "latest"), "--json").stdout)
    assert shown["run_id"] == newest
    bad = cli("runs", str(machine_runs), "--sort", "nope")
    assert bad.returncode == 2 and "sort by start, status, run_id or one of: " in bad.stderr
    empty = cli("show", str(machine_runs.parent / "nothing" / "latest"))
    assert empty.returncode == 2 and "there is no run below" in empty.stderr


def test_a_real_latest_directory_is_not_replaced(tmp_path):
    from yprov4ml.storage.latest import resolve_latest

    (tmp_path / "exp" / "latest").mkdir(parents=True)
    assert resolve_latest(tmp_path / "exp" / "latest") == tmp_path / "exp" / "latest"


def test_printing_a_build_result_is_a_short_summary(tmp_path):
    from yprov4wfs_bridge import Workflow, build

    with Workflow("wf", directory=tmp_path / "wf") as wf:
        with wf.task("train"):
            with yprov4ml.start_run("www.example.org", "inner", tmp_path / "prov"):
                yprov4ml.log_metric("loss", 1.0, step=0)
    result = build(tmp_path / "wf", crate=False, svg=False)
    text = repr(result)
    assert len(text) < 400, text
    assert "1 rank document(s) of 1 run(s)" in text and str(result.bundle) in text


def test_emissions_for_an_unchosen_country_say_so(tmp_path):
    pytest.importorskip("codecarbon")
    script = (f"import yprov4ml\nyprov4ml.start_run('www.example.org', 'energy', r'{tmp_path}')\n"
              "yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, 0)\nprint(yprov4ml.end_run())\n")
    env = {k: v for k, v in os.environ.items() if k != "YPROV4ML_COUNTRY"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "emissions are computed for the grid of USA, the default" in done.stderr
    view = yprov4ml.load_run(Path(done.stdout.strip().splitlines()[-1]).parent)
    assert view.run["energy_country"] == "USA" and view.run["energy_country_source"] == "default"
    env["YPROV4ML_COUNTRY"] = "ita"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "the default" not in done.stderr


def test_what_the_examples_write_is_not_left_untracked_in_the_checkout():
    outputs = ["examples/snakemake/results/model.pt", "examples/snakemake/.snakemake/log", "parsl-out/a",
               "runinfo/000/parsl.log", "mlruns/0/meta.yaml", "mlflow.db", "examples/snakemake/provenance/x.json"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *outputs], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert sorted(done.stdout.split()) == sorted(outputs)
