"""``yprov4ml reproduce RUN --run [--verify]``: re-run a recorded run from its record and say if it reproduced.

The recorded code is laid out in a fresh directory (``materialise``), the
recorded command runs there with the recorded arguments, and the new run
starts from the original's generator states (``$YPROV4ML_REPRODUCE_OF``).
With ``verify`` every rank's new record is compared with the original's
(``verify``) and the verdict is written into the new record
(``prov.reproduction``). Exit 0: reproduced; 1: differs; 2: could not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from ..capture.reproducibility import REPRODUCE_OF, REPRODUCTION_MARKER, REPRODUCTION_SAVE_DIR
from ..errors import NotARunError
from ..prov.reader import RunView, load_run
from ..prov.reproduction import record_reproduction
from ..storage.layout import located, prov_file
from .materialise import build_venv, materialise
from .reproduce import Recipe, recipe
from .verify import verify

REPRODUCED, DIFFERS, COULD_NOT_RUN = 0, 1, 2
REPRODUCTIONS = "reproductions"


def _command(plan: Recipe, python: str, script: Path | None, recorded_script: str | None) -> list[str] | None:
    """The recorded command with today's launcher, the chosen interpreter and the materialised script.

    ``plan.command`` is the launcher's prefix (``mpiexec -n N``, ``srun -n N``,
    ``torchrun --nproc-per-node=N``) followed by the interpreter (not for
    torchrun), the script and its arguments. None when the launcher is not installed here.
    """
    command = list(plan.command)
    if plan.launcher:
        found = shutil.which(command[0]) or shutil.which(command[0], path=str(Path(sys.executable).parent))
        if found is None:
            return None
        command[0] = found
    # After the launcher comes the interpreter, except under torchrun, which starts it itself.
    if plan.launcher[:1] != ["torchrun"] and len(plan.launcher) < len(command):
        command[len(plan.launcher)] = python
    if script is not None and recorded_script:
        for i, part in enumerate(command):
            if part == recorded_script or Path(part).name == Path(recorded_script).name:
                command[i] = str(script)
                break
    return command


def reproduce(run: str | Path, *, check: bool = False, rtol: float = 1e-7, atol: float = 0.0,
              venv: Path | None = None, say: Callable[[str], None] = print) -> int:
    """Re-run ``run`` from its record; with ``check``, compare and record the verdict. The exit code."""
    plan = recipe(run)
    say(plan.text())
    original = load_run(run)
    if not plan.command:
        say("cannot reproduce: the run recorded no command line")
        return COULD_NOT_RUN
    fresh = Path(tempfile.mkdtemp(prefix=f"yprov4ml-reproduce-{original.run_id[:40]}-"))
    try:  # the new run keeps its own copy of the code: the materialised one is only scaffolding
        new_runs = _rerun(plan, original, fresh, venv, say)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    if new_runs is None:
        return COULD_NOT_RUN
    return _judge(original.run_dir, original.run_id, new_runs, check, rtol, atol, say)


def _rerun(plan: Recipe, original: RunView, fresh: Path, venv: Path | None,
           say: Callable[[str], None]) -> dict[int, Path] | None:
    """Run the recorded command on the recorded code laid out in ``fresh``: the new runs by rank, or None."""
    try:
        code = materialise(original, fresh / "code")
    except NotARunError as exc:
        say(f"cannot reproduce: {exc}")
        return None
    say(f"code:     {code.root} ({code.how})")
    for note in code.notes:
        say(f"note:     {note}")
    python = sys.executable
    if venv is not None:
        built, failed = build_venv(venv, plan.packages)
        python = str(built)
        say(f"venv:     {venv}" + (f"; {len(failed)} package(s) could not be installed:" if failed else ""))
        for line in failed:
            say(f"          {line}")
    command = _command(plan, python, code.script, original.source.get("script"))
    if command is None:
        say(f"cannot reproduce: the run was launched with {plan.command[0]}, which is not installed here")
        return None
    workdir = plan.workdir if plan.workdir and Path(plan.workdir).is_dir() else str(code.root)
    marker = fresh / "new-runs.jsonl"
    save_dir = reproductions_dir(original.run_dir)
    env = {**os.environ, REPRODUCE_OF: str(original.run_dir), REPRODUCTION_MARKER: str(marker),
           REPRODUCTION_SAVE_DIR: str(save_dir)}
    say(f"running:  {' '.join(command)}  (in {workdir}; the new run goes to {save_dir})")
    done = subprocess.run(command, cwd=workdir, env=env)
    new_runs = _new_runs(marker)
    if not new_runs:
        say(f"cannot reproduce: the re-run (exit {done.returncode}) recorded no run")
        return None
    return new_runs


def reproductions_dir(original: Path) -> Path:
    """``prov/reproductions`` for a run in ``prov/<experiment>/<run>``: the re-runs sit beside the experiments,
    in an experiment of the same name, where ``compare prov/<experiment>`` does not count them."""
    return original.resolve().parent.parent / REPRODUCTIONS


def _new_runs(marker: Path) -> dict[int, Path]:
    found = {}
    if marker.is_file():
        for line in marker.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                found[int(entry["rank"])] = Path(entry["run_dir"])
            except (ValueError, KeyError, TypeError):
                continue
    return found


def _judge(original_dir: Path, original_id: str, new_runs: dict[int, Path], check: bool, rtol: float,
           atol: float, say: Callable[[str], None]) -> int:
    differs = False
    for rank, run_dir in sorted(new_runs.items()):
        document, before = prov_file(run_dir, rank), located(prov_file(original_dir, rank))
        if not document.is_file() or not before.is_file():
            say(f"rank {rank}: no document to compare ({document if not document.is_file() else before} missing)")
            differs = True
            continue
        if not check:
            record_reproduction(document, before, original_id, rank, "not verified", [], [], rtol, atol)
            say(f"new run:  {document} (not verified: add --verify)")
            continue
        result = verify(load_run(before), load_run(document), rtol, atol)
        verdict = "reproduced" if result.reproduced else "differs"
        record_reproduction(document, before, original_id, rank, verdict, [d.row() for d in result.differences],
                            result.notes, rtol, atol)
        say(f"rank {rank}: {verdict.upper()} — {result.compared_points} metric points compared "
            f"(rtol {rtol}, atol {atol}); new run {document}")
        if result.differences:
            say(result.table())
        for note in result.notes:
            say(f"note:     {note}")
        differs |= not result.reproduced
    return DIFFERS if differs else REPRODUCED
