"""The recorded code in a fresh directory — the commit with the run's uncommitted changes, or its snapshot.

Never the current working tree: with the repository at hand, the recorded
commit is exported (``git archive``), the recorded patch applied, and the
run's copy of its imported files laid over it (untracked files included);
without it, the copy alone. ``--venv`` builds an environment with the
recorded package versions on top of the current ones.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotARunError
from ..prov.reader import RunView
from ..storage.files import resolve_inside


@dataclass
class Materialised:
    root: Path
    script: Path | None
    how: str                 # "git checkout + patch + snapshot", "snapshot"
    notes: list[str] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=300)


def _has_commit(repo: Path, commit: str) -> bool:
    if shutil.which("git") is None or not repo.is_dir() or not commit or commit.startswith("("):
        return False
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def materialise(view: RunView, target: Path) -> Materialised:
    """Lay out the run's code under ``target`` (which must not exist yet)."""
    source = view.source
    target.mkdir(parents=True)
    snapshot = resolve_inside(view.run_dir, str(source.get("snapshot", ""))) if source.get("snapshot") else None
    repo = Path(str(source.get("snapshot_root", "")))
    commit = str(source.get("git_commit", ""))
    how, notes = [], []
    if _has_commit(repo, commit):
        archive = _git(repo, "archive", "--format=tar", commit)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")  # no absolute paths, no links out of target
        how.append(f"git checkout {commit[:12]}")
        patch = resolve_inside(view.run_dir, str(source.get("uncommitted_patch", ""))) \
            if source.get("uncommitted_patch") else None
        if patch is not None and patch.is_file():
            applied = _git(target, "apply", "--whitespace=nowarn", str(patch))
            if applied.returncode != 0:
                notes.append(f"the recorded uncommitted changes did not apply: {applied.stderr.decode()[:300]}")
            else:
                how.append("uncommitted changes")
    elif commit:
        notes.append(f"commit {commit[:12]} is not in {repo} (or git is missing): the run's own copy of its code is used")
    if snapshot is not None and snapshot.is_dir():
        shutil.copytree(snapshot, target, symlinks=True, dirs_exist_ok=True)
        how.append("recorded copy of the imported files")
    if not how:
        raise NotARunError(f"{view.prov_path}: the record holds no copy of the code and no commit that can be "
                           "checked out; record the run with this yprov4ml version to reproduce it")
    if source.get("snapshot_redacted"):
        notes.append(f"secrets written into the code were replaced by <redacted> in the record "
                     f"({source['snapshot_redacted']}): put them back, or read them from the environment")
    inside = source.get("script_in_tree")
    script = resolve_inside(target, str(inside)) if inside else None
    if script is not None and not script.is_file():
        notes.append(f"the script {inside} is not in the recorded code")
        script = None
    return Materialised(target, script, " + ".join(how), notes)


def build_venv(directory: Path, packages: dict[str, str]) -> tuple[Path, list[str]]:
    """A virtual environment at ``directory`` with the recorded versions on top of the current packages.

    Returns its interpreter and the packages pip could not install (each ``name==version: why``).
    Only versions that differ from what this interpreter has are installed.
    """
    from .reproduce import current_packages

    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, capture_output=True, timeout=300)
    python = directory / "bin" / "python"
    # This interpreter's packages sit beneath the venv's own (a .pth runs addsitedir, so that their .pth
    # files — editable installs among them — work too): only what differs has to be installed.
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    below = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    Path(own, "_yprov4ml_base_packages.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({path!r})" for path in below) + "\n")
    now = current_packages()
    wanted = [f"{name}=={version}" for name, version in sorted(packages.items()) if now.get(name.lower()) != version]
    failed: list[str] = []
    if not wanted:
        return python, failed
    together = subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], capture_output=True, text=True,
                              timeout=3600)
    if together.returncode == 0:
        return python, failed
    for requirement in wanted:  # one at a time, to say exactly which cannot be had
        alone = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement], capture_output=True,
                               text=True, timeout=3600)
        if alone.returncode != 0:
            reason = (alone.stderr.strip().splitlines() or ["pip failed"])[-1]
            failed.append(f"{requirement}: {reason[:200]}")
    return python, failed
