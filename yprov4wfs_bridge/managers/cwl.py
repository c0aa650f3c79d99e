"""CWL with cwltool: a workflow run recorded from cwltool's own job interfaces, at both levels.

    from yprov4wfs_bridge.managers.cwl import run
    result = run("pipeline.cwl", "job.yml", directory="provenance")

or ``yprov4wfs-bridge cwl pipeline.cwl job.yml --directory provenance``.

cwltool pins ``prov==1.5.1``; yprov4ml needs prov 3, so cwltool lives in an
environment of its own (``pipx install cwltool``, or a venv) and is named by
``cwltool=`` (``--cwltool``; default: ``cwltool`` on PATH). Its interpreter
runs ``cwltool_engine.py``, which wraps cwltool's executors and reports each
job — command line, inputs and outputs with size and sha256, host, status and
cwltool's own error lines — on a pipe; this module turns those reports into
:class:`WorkflowRecorder` calls. Each job's environment carries its task's
identity, so a yprov4ml run in a step's command nests under that step. A
step that never ran because another failed is recorded as not run.

cwltool's ``--provenance DIR`` research object (CWLProv) is independent of
ours: give it among ``cwltool_options`` and the record names it
(``cwlprov_research_object``) and the crate includes it as a dataset, so a
reader can go from our multi-level record to cwltool's own PROV of the run.
CWL has no retries; a re-run into the same directory is a new execution.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from yprov4ml.storage.files import sha256_of

from ..errors import WorkflowError
from ..events import WorkflowRecorder
from ..ids import safe_id

ENGINE = Path(__file__).with_name("cwltool_engine.py")
CWLTOOL_URL = "https://github.com/common-workflow-language/cwltool"
SUMMARY_FILE = "cwl_outputs.json"
INSTALL_HINT = ("install cwltool in an environment of its own (it pins prov 1.5.1, which yprov4ml cannot share): "
                "pipx install cwltool, or python -m venv ENV && ENV/bin/pip install cwltool; then give --cwltool "
                "ENV/bin/cwltool")


@dataclass
class CwlRun:
    """What one recorded cwltool run gave: its exit code, the output object, the record's outputs."""

    exit_code: int
    outputs: dict[str, Any]
    directory: Path
    built: Any = None  # yprov4wfs_bridge.outputs.BuildResult, when built
    failed_tasks: list[str] = field(default_factory=list)


def cwltool_interpreter(cwltool: str | os.PathLike | None = None) -> tuple[str, str]:
    """The Python that runs ``cwltool`` (a cwltool script, or that environment's python) and cwltool's version."""
    given = str(cwltool) if cwltool else shutil.which("cwltool")
    if not given:
        raise WorkflowError(f"cwltool is not on PATH: {INSTALL_HINT}")
    path = Path(shutil.which(given) or given)
    if not path.is_file():
        raise WorkflowError(f"cwltool {given!r} is not a file: {INSTALL_HINT}")
    python = str(path)
    if not path.name.startswith("python"):
        with path.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
        if not first.startswith("#!"):
            raise WorkflowError(f"{path} is neither a python interpreter nor a script that names one (#!...)")
        words = shlex.split(first[2:])
        python = (shutil.which(words[1]) or words[1]) if Path(words[0]).name == "env" and len(words) > 1 else words[0]
    probe = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('cwltool'))"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        raise WorkflowError(f"{python} (from {path}) cannot import cwltool: {INSTALL_HINT}")
    return python, probe.stdout.strip()


def _has_option(options: Sequence[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` among cwltool's options, else None."""
    for i, option in enumerate(options):
        if option == name and i + 1 < len(options):
            return options[i + 1]
        if option.startswith(name + "="):
            return option.split("=", 1)[1]
    return None


class _Translator:
    """cwltool_engine's reports → recorder calls."""

    def __init__(self, recorder: WorkflowRecorder):
        self.recorder = recorder
        self.producers: dict[str, str] = {}  # path → the task that wrote it
        self.outputs_by_digest: dict[str, str] = {}  # sha256 → the task that wrote it
        self.steps: list[str] = []
        self.ran: set[str] = set()
        self.failed: list[str] = []
        self.exit_code: int | None = None

    def apply(self, report: dict[str, Any]) -> None:
        kind, when = report.get("kind"), report.get("time")
        if kind == "workflow":
            self.steps = [safe_id(s) for s in report.get("steps") or [] if s]
            self.recorder.workflow_noted({"cwl_version": report.get("cwl_version"), "cwl_class": report.get("cwl_class"),
                                          "cwl_process": report.get("id"), "label": report.get("label"),
                                          "steps": self.steps, "definition_parts": report.get("parts") or []},
                                         when=when)
        elif kind == "job_started":
            self._started(report, when)
        elif kind == "job_ended":
            self._ended(report, when)
        elif kind == "exit":
            self.exit_code = int(report.get("code", 1))

    def _started(self, report: dict[str, Any], when: float | None) -> None:
        task = report["task"]
        inputs = report.get("inputs") or []
        depends = sorted({self.producers[i["path"]] for i in inputs if i.get("path") in self.producers} - {task})
        self.recorder.task_submitted(task, name=report.get("name") or task, command=report.get("command") or "",
                                     depends_on=depends, when=when,
                                     attributes={"cwl_job_class": report.get("job_class"),
                                                 "outdir": report.get("outdir")})
        self.recorder.task_started(task, host=report.get("host"), when=when)
        self.ran.add(task)
        for item in inputs:
            self.recorder.data_used(task, item["path"], when=when, size=item.get("size"), sha256=item.get("sha256"))

    def _ended(self, report: dict[str, Any], when: float | None) -> None:
        task, status = report["task"], report.get("status")
        for item in report.get("outputs") or []:
            self.recorder.data_generated(task, item["path"], when=when, size=item.get("size"),
                                         sha256=item.get("sha256"))
            self.producers[item["path"]] = task
            if item.get("sha256"):
                self.outputs_by_digest[item["sha256"]] = task
        if status == "success":
            self.recorder.task_finished(task, when=when)
        else:
            errors = report.get("errors") or []
            self.recorder.task_failed(task, "; ".join([f"cwltool: {status}", *errors]), when=when)
            self.failed.append(task)

    def final_outputs(self, outputs: dict[str, Any]) -> None:
        """The workflow's outputs, moved by cwltool to its --outdir: generated by the task that wrote the same
        bytes (cwltool moves the file; its content is the task's)."""
        for path in _file_paths(outputs):
            if Path(path).is_file():
                digest = sha256_of(Path(path))
                task = self.outputs_by_digest.get(digest)
                if task:
                    self.recorder.data_generated(task, path, size=Path(path).stat().st_size, sha256=digest)

    def steps_not_run(self, why: str) -> None:
        for step in self.steps:
            if step not in self.ran:
                self.recorder.task_submitted(step, name=step)
                self.recorder.task_not_run(step, why)


def _file_paths(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("class") == "File" and isinstance(value.get("path"), str):
            found.append(value["path"])
        for item in value.values():
            found.extend(_file_paths(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_file_paths(item))
    return found


def run(workflow: str | os.PathLike, job: str | os.PathLike | None = None, directory: str | os.PathLike = "provenance",
        cwltool: str | os.PathLike | None = None, cwltool_options: Sequence[str] = (), inputs: Sequence[str] = (),
        workflow_id: str | None = None, name: str | None = None, build: bool = True,
        **build_options: Any) -> CwlRun:
    """Run a CWL workflow (or tool) with cwltool and record it.

    Args:
        workflow: the CWL document.
        job: its input object (YAML or JSON), if any.
        directory: where the workflow record, bundle, graph and crate go.
        cwltool: the ``cwltool`` script (or its environment's python) to run; default ``cwltool`` on PATH.
        cwltool_options: cwltool's own options (``--outdir``, ``--parallel``, ``--provenance``...).
        inputs: inputs given as command-line options after the job file (``--threshold 3``).
        workflow_id: the record's workflow id (default: from the document's name).
        name: the workflow's name (default: the document's ``label``, else its name).
        build: write the bundle, graph and crate afterwards (options as ``yprov4wfs_bridge.build``'s).

    Returns:
        A :class:`CwlRun`; the record is written even when the workflow failed.
    """
    document = Path(workflow).absolute()
    if not document.is_file():
        raise WorkflowError(f"no CWL document at {document}")
    python, version = cwltool_interpreter(cwltool)
    directory = Path(directory).absolute()
    recorder = WorkflowRecorder(directory, workflow_id or safe_id(document.stem), name=name or document.stem,
                                manager=("cwltool", version, CWLTOOL_URL))
    options = list(cwltool_options)
    summary_file = _has_option(options, "--write-summary")
    if summary_file is None:  # cwltool prints its output object; kept in a file, then printed as cwltool would
        summary_file = str(directory / SUMMARY_FILE)
        options += ["--write-summary", summary_file]
    research_object = _has_option(options, "--provenance")
    preserved = [a for name in recorder.workflow_identity() for a in ("--preserve-environment", name)]
    argv = [*options, *preserved, str(document), *([str(Path(job).absolute())] if job else []), *inputs]
    recorder.workflow_started({"command": shlex.join(["cwltool", *argv]), "definition": str(document),
                               "language": "cwl", "host": os.uname().nodename,
                               **({"cwlprov_research_object": str(Path(research_object).absolute())}
                                  if research_object else {})})
    translator = _Translator(recorder)
    status, error = "FINISHED", None
    read_end, write_end = os.pipe()
    process = subprocess.Popen([python, str(ENGINE), str(write_end), *argv], pass_fds=(write_end,),
                               env={**os.environ, **recorder.workflow_identity()})
    os.close(write_end)
    try:
        with os.fdopen(read_end, encoding="utf-8") as reports:
            for line in reports:
                try:
                    translator.apply(json.loads(line))
                except (ValueError, KeyError, WorkflowError) as exc:  # one bad report: said, the rest goes on
                    print(f"yprov4wfs-bridge cwl: a report of cwltool_engine was not understood ({exc})",
                          file=sys.stderr)
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        code, status, error = process.wait(), "INTERRUPTED", "interrupted (SIGINT)"
    outputs = _read_summary(Path(summary_file))
    translator.final_outputs(outputs)
    if status != "INTERRUPTED" and code != 0:
        status = "FAILED"
        error = f"cwltool exited with {code}" + (f"; failed: {', '.join(translator.failed)}" if translator.failed
                                                 else "")
        translator.steps_not_run("not run: the workflow failed before this step could start")
    recorder.workflow_ended(status, error)
    built = recorder.finish(build=build, **build_options)
    if outputs and _has_option(list(cwltool_options), "--write-summary") is None:
        print(json.dumps(outputs, indent=4))
    return CwlRun(exit_code=code, outputs=outputs, directory=directory, built=built,
                  failed_tasks=list(translator.failed))


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # cwltool failed before writing it
    return value if isinstance(value, dict) else {}
