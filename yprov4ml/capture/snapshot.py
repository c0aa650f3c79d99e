"""A copy of the code a run ran: its script and the modules it imported from the user's own tree.

The tree is the script's git work tree (else the script's folder). Kept in
the run directory under ``source/rankN/`` (like every file of a rank, it names
the rank; rank 0 takes it): ``files/<path in the tree>`` for every
imported file of the tree (untracked ones included), and with git
``uncommitted.patch`` (``git diff HEAD --binary``: what the work tree had on
top of the recorded commit). A reproduction checks out the commit, applies
the patch and lays the files over it — or, without the repository, uses the
files alone. Installed packages, the virtual environment and the run
directories themselves are never copied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ..storage.files import atomic_write_bytes
from .secrets import redact_source

MAX_FILE_BYTES = 8 << 20    # one source file larger than this is not copied (named in the record)
MAX_TOTAL_BYTES = 64 << 20  # the whole copy
SNAPSHOT_DIR = "source"


def tree_root(script: Path | None) -> tuple[Path, bool]:
    """The user's tree: the git work tree of the script (True), else its folder (False)."""
    where = script.parent if script is not None else Path.cwd()
    top = git_output(where, "rev-parse", "--show-toplevel")
    if top:
        return Path(top.decode().strip()).resolve(), True
    return where.resolve(), False


def git_output(cwd: Path, *args: str) -> bytes | None:
    """What ``git ARGS`` prints in ``cwd``, or None (no git, not a work tree, an error)."""
    if shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def installed_roots() -> list[Path]:
    """Where installed code lives: the interpreter's prefixes, its site-packages, and yprov4ml's own packages
    (installed in editable mode they lie in a working tree, yet they are the recorder, not the run's code:
    their version is in the environment entity)."""
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots |= {Path(p).resolve() for key in ("purelib", "platlib", "stdlib") if (p := sysconfig.get_path(key))}
    here = Path(__file__).absolute()  # unresolved too: a strict editable install links our files into a tree
    for package in (here.parents[1], here.resolve().parents[1]):
        roots |= {package, package.parent / "yprov4wfs_bridge"}
    if here.parents[2].name.startswith("__editable__"):
        roots.add(here.parents[2])  # that whole tree: prov4ml and the Snakemake plug-in are ours too
    return sorted(roots)


def user_files(root: Path, script: Path | None, exclude: list[Path], modules: list[str] | None = None) -> list[Path]:
    """The script and every imported module file inside ``root``, not in an installed or excluded place.

    ``modules`` limits the search to those names of ``sys.modules`` (the ones imported since a first look).
    """
    skip = [s for s in installed_roots() + [p.resolve() for p in exclude] if s != root]
    found = {script.resolve()} if script is not None and script.is_file() else set()
    names = list(sys.modules) if modules is None else modules
    inside: dict[str, bool] = {}  # folder → inside root and not skipped; resolving per folder, not per module
    for name in names:
        location = getattr(sys.modules.get(name), "__file__", None)
        if not isinstance(location, str) or not location.endswith(".py") or "site-packages" in location:
            continue
        folder = os.path.dirname(location)
        if folder not in inside:
            real = Path(os.path.realpath(folder))
            inside[folder] = real.is_relative_to(root) and not any(real.is_relative_to(s) for s in skip)
        if inside[folder]:
            path = Path(location).resolve()
            if path.is_file():
                found.add(path)
    return sorted(found)


def _redacted(data: bytes, keep: frozenset[str]) -> tuple[bytes, bool]:
    """Source bytes with the secrets written into them replaced; True when some were (else the bytes as given)."""
    clean, kinds = redact_source(data.decode("utf-8", errors="surrogateescape"), keep)
    return (clean.encode("utf-8", errors="surrogateescape"), True) if kinds else (data, False)


def take_snapshot(run_dir: Path, rank: int, script: Path | None, exclude: list[Path],
                  keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Copy the run's own code under ``run_dir/source/rankN``; the facts the source entity records.

    Secrets never leave in clear, not even in a copy of the code: a file (or the patch) with a secret
    written into it is kept with the secret replaced, and named in ``snapshot_redacted``.
    """
    root, is_git = tree_root(script)
    place = f"{SNAPSHOT_DIR}/rank{rank}"
    target = run_dir / place
    facts: dict[str, Any] = {"snapshot_root": str(root), "snapshot": f"{place}/files"}
    if script is not None and script.resolve().is_relative_to(root):
        facts["script_in_tree"] = script.resolve().relative_to(root).as_posix()
    total, copied, left_out, redacted = 0, [], [], []
    for path in user_files(root, script, exclude + [run_dir]):
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or total + size > MAX_TOTAL_BYTES:
            left_out.append(path.relative_to(root).as_posix())
            continue
        relative = path.relative_to(root)
        (target / "files" / relative).parent.mkdir(parents=True, exist_ok=True)
        data, hidden = _redacted(path.read_bytes(), keep)
        atomic_write_bytes(target / "files" / relative, data)
        if hidden:
            redacted.append(relative.as_posix())
        total += size
        copied.append(relative.as_posix())
    facts["snapshot_files"] = copied
    if left_out:
        facts["snapshot_left_out"] = left_out
    if is_git:
        patch = git_output(root, "diff", "HEAD", "--binary")
        if patch:
            patch, hidden = _redacted(patch, keep)
            if hidden:
                redacted.append("uncommitted.patch")
            target.mkdir(parents=True, exist_ok=True)  # (no file of the run's own may have been copied)
            atomic_write_bytes(target / "uncommitted.patch", patch)
            facts["uncommitted_patch"] = f"{place}/uncommitted.patch"
            facts["uncommitted_patch_sha256"] = hashlib.sha256(patch).hexdigest()
        untracked = git_output(root, "ls-files", "--others", "--exclude-standard", "-z")
        imported_untracked = sorted(set(copied) & set(untracked.decode(errors="replace").split("\0"))) \
            if untracked else []
        if imported_untracked:
            facts["untracked_imported"] = imported_untracked
    if redacted:
        facts["snapshot_redacted"] = redacted
    return facts
