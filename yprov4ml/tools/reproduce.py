"""What it takes to re-run a recorded experiment, read from its PROV-JSON alone — and how today differs."""

from __future__ import annotations

import json
import platform
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capture.environment import installed_packages
from ..prov.reader import RunView, load_run

MPI_LAUNCHERS = ("mpich", "intelmpi", "openmpi", "pmix", "mpi4py")
PYTORCH_INDEX = "https://download.pytorch.org/whl"
PYTORCH_BUILD = re.compile(r"(cpu|cu\d+|rocm\d+(\.\d+)*|xpu)\Z")  # the labels of PyTorch's wheel indexes


@dataclass
class Recipe:
    command: list[str]  # the whole command, launcher included (mpiexec -n 4 python train.py ...)
    workdir: str | None
    params: dict
    source: dict
    python: str
    packages: dict[str, str]  # what pip can install: name → version (local build labels dropped)
    local_packages: list[str] = field(default_factory=list)  # installed from a directory: no index has them
    warnings: list[str] = field(default_factory=list)
    launcher: list[str] = field(default_factory=list)  # the start of ``command`` that is the launcher's
    builds: dict[str, str] = field(default_factory=dict)  # name → local build label (torch 2.13.0+cpu: "cpu")

    def requirements(self) -> str:
        """The recorded packages as a pip requirements file (``pip install -r``). A PyTorch build such as
        ``+cpu`` is pinned as it was, from PyTorch's own index: the public index's 2.13.0 is another build."""
        indexes = sorted({label for label in self.builds.values() if PYTORCH_BUILD.match(label)})
        lines = [f"# the packages of the recorded run, {len(self.packages)} pinned"]
        lines += [f"--extra-index-url {PYTORCH_INDEX}/{label}" for label in indexes]
        for name, version in sorted(self.packages.items()):
            label = self.builds.get(name)
            if label and PYTORCH_BUILD.match(label):
                lines.append(f"{name}=={version}+{label}")
            else:
                lines.append(f"{name}=={version}" + (f"  # recorded as {version}+{label}, a local build"
                                                      if label else ""))
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        lines = [f"command:  {shlex.join(self.command)}"]
        if self.workdir:
            lines.append(f"in:       {self.workdir}")
        if self.source.get("git_commit"):
            lines.append(f"source:   git checkout {self.source['git_commit']}"
                         + ("   (the run had uncommitted changes)" if self.source.get("git_dirty") else ""))
        if self.source.get("script_sha256"):
            lines.append(f"script:   {self.source.get('script')} sha256 {self.source['script_sha256']}")
        lines.append(f"python:   {self.python}")
        lines.append("params:   " + ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items())))
        lines.append(f"packages: {len(self.packages)} pinned: `yprov4ml reproduce RUN --requirements FILE` writes "
                     "them for `pip install -r FILE`")
        lines += [f"build:    {name}=={self.packages[name]}+{label}" + (
                  f" (from {PYTORCH_INDEX}/{label})" if PYTORCH_BUILD.match(label) else " (a local build)")
                  for name, label in sorted(self.builds.items()) if name in self.packages]
        if self.local_packages:
            lines.append(f"local:    {', '.join(self.local_packages)} (installed from a directory: "
                         "install them from their source)")
        lines += [f"warning:  {w}" for w in self.warnings]
        return "\n".join(lines)


def launcher_prefix(run: dict[str, Any]) -> list[str]:
    """The launcher a multi-rank run was started with, as the start of its command."""
    world, launcher = run.get("world_size", 1), run.get("launcher", "none")
    if not isinstance(world, int) or world < 2:
        return []
    if launcher in MPI_LAUNCHERS:
        return ["mpiexec", "-n", str(world)]
    if launcher == "slurm":
        return ["srun", "-n", str(world)]
    if launcher in ("torchrun", "torch.distributed"):
        return ["torchrun", f"--nproc-per-node={world}"]
    return []


def _json_list(text: Any) -> list:
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except (ValueError, RecursionError):  # a damaged attribute: as if nothing was recorded
        return []
    return value if isinstance(value, list) else []


def recorded_packages(view: RunView) -> tuple[dict[str, str], list[str]]:
    """name → version exactly as the run recorded them (those installed from a directory left out), and those."""
    local_names = {str(name) for name in _json_list(view.environment.get("local_packages"))}
    packages = {}
    for entry in _json_list(view.environment.get("packages")):
        name, _, version = str(entry).partition("==")
        if name and name not in local_names:
            packages[name] = version
    return packages, sorted(local_names)


def current_packages() -> dict[str, str]:
    """lower-case name → version (local build label dropped) of what this interpreter has installed."""
    current = {}
    for entry in installed_packages():
        name, _, version = entry.partition("==")
        current[name.lower()] = version.split("+", 1)[0]
    return current


def recipe(run: str | Path) -> Recipe:
    """The command line, parameters, source commit and packages of a run, with warnings about today's setup."""
    view = load_run(run)
    command = shlex.split(str(view.run.get("command_line", "")))
    exact, local = recorded_packages(view)
    packages = {name: version.split("+", 1)[0] for name, version in exact.items()}  # 2.13.0+cpu: the index has 2.13.0
    builds = {name: version.split("+", 1)[1] for name, version in exact.items() if "+" in version}
    warnings = []
    workdir = view.run.get("working_dir") or None
    source = dict(view.source)
    script = source.get("script")
    if command and not workdir and script and len(command) > 1 and not Path(command[1]).is_absolute():
        command[1] = str(script)  # recorded before the working directory was: the script's absolute path
    prefix = launcher_prefix(view.run)
    if prefix and prefix[0] == "torchrun" and command:
        command = command[1:]  # torchrun starts the interpreter itself
    if not command:
        warnings.append("the run recorded no command line")
    elif not prefix and not Path(command[0]).exists():
        warnings.append(f"the recorded interpreter {command[0]} does not exist here; the current one will be used")
    python = str(view.environment.get("python_version", "unknown"))
    if python != platform.python_version():
        warnings.append(f"the run used Python {python}, this is Python {platform.python_version()}")
    current = current_packages()
    differ = [f"{n} {v} (now {current.get(n.lower(), 'not installed')})" for n, v in sorted(packages.items())
              if current.get(n.lower()) != v]
    if differ:
        warnings.append(f"{len(differ)} package(s) differ from the run: " + "; ".join(differ[:10])
                        + ("; ..." if len(differ) > 10 else ""))
    if not packages:
        warnings.append("the run recorded no package list (it did not reach end_run)")
    if script and Path(script).is_file() and source.get("script_sha256"):
        from ..storage.files import sha256_of

        if sha256_of(script) != source["script_sha256"]:
            warnings.append(f"{script} has changed since the run (its sha256 differs)")
    elif script:
        warnings.append(f"the script {script} is not here")
    if view.randomness.get("determinism_warning"):
        warnings.append(f"determinism cannot be promised: {view.randomness['determinism_warning']}")
    if workdir and not Path(workdir).is_dir():
        warnings.append(f"the run's working directory {workdir} is not here; the current one will be used")
    return Recipe(prefix + command, workdir, view.params, source, python, packages, local, warnings, prefix, builds)
