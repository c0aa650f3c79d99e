"""What it takes to re-run a recorded experiment, read from its PROV-JSON alone — and how today differs."""

from __future__ import annotations

import json
import platform
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..capture.environment import installed_packages
from ..prov.reader import load_run


@dataclass
class Recipe:
    command: list[str]
    workdir: str | None
    params: dict
    source: dict
    python: str
    packages: dict[str, str]
    warnings: list[str] = field(default_factory=list)

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
        lines.append(f"packages: pip install " + " ".join(f"'{n}=={v}'" for n, v in sorted(self.packages.items())))
        lines += [f"warning:  {w}" for w in self.warnings]
        return "\n".join(lines)


def recipe(run: str | Path) -> Recipe:
    """The command line, parameters, source commit and packages of a run, with warnings about today's setup."""
    view = load_run(run)
    command = shlex.split(view.run.get("command_line", ""))
    packages = {}
    recorded = view.environment.get("packages")
    for entry in json.loads(recorded) if isinstance(recorded, str) else []:
        name, _, version = entry.partition("==")
        packages[name] = version
    warnings = []
    if not command:
        warnings.append("the run recorded no command line")
    elif not Path(command[0]).exists():
        warnings.append(f"the recorded interpreter {command[0]} does not exist here; the current one will be used")
    python = str(view.environment.get("python_version", "unknown"))
    if python != platform.python_version():
        warnings.append(f"the run used Python {python}, this is Python {platform.python_version()}")
    current = {}
    for entry in installed_packages():
        name, _, version = entry.partition("==")
        current[name.lower()] = version
    differ = [f"{n} {v} (now {current.get(n.lower(), 'not installed')})" for n, v in sorted(packages.items())
              if current.get(n.lower()) != v]
    if differ:
        warnings.append(f"{len(differ)} package(s) differ from the run: " + "; ".join(differ[:10])
                        + ("; ..." if len(differ) > 10 else ""))
    if not packages:
        warnings.append("the run recorded no package list (it did not reach end_run)")
    source = dict(view.source)
    script = source.get("script")
    if script and Path(script).is_file() and source.get("script_sha256"):
        from ..storage.files import sha256_of

        if sha256_of(script) != source["script_sha256"]:
            warnings.append(f"{script} has changed since the run (its sha256 differs)")
    elif script:
        warnings.append(f"the script {script} is not here")
    return Recipe(command, str(Path(script).parent) if script else None, view.params, source, python, packages,
                  warnings)
