"""Upstream's ``log_source_code``: the code a user names, and with git the commit and the uncommitted diff."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from .snapshot import git_output


def source_code_path(path: Any) -> Path:
    """The file or folder to record: ``path``, else the entry script; ValueError when neither exists.

    A ``path`` that does not exist here (upstream's examples name their authors' own machines) is said in a
    warning, and the entry script is recorded instead.
    """
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    if path is not None and not Path(path).exists():
        if not script or not Path(script).exists():
            raise ValueError(f"log_source_code: {path} does not exist; pass the path of a source file or folder")
        warnings.warn(f"log_source_code: {path} does not exist here; the running script {script} is recorded "
                      "instead", RuntimeWarning, stacklevel=3)
        path = None
    if path is None:
        if not script:
            raise ValueError("log_source_code: this process has no script file (python -c or a notebook): "
                             "pass the path of the code to record")
        path = script
    return Path(path).resolve()


def git_facts(path: Path) -> tuple[dict[str, Any], bytes]:
    """The commit, branch and dirty flag of ``path``'s git work tree, and ``git diff HEAD`` of ``path``
    (what it holds beyond the commit). ValueError when ``path`` is in no work tree."""
    where = path if path.is_dir() else path.parent
    top = git_output(where, "rev-parse", "--show-toplevel")
    if top is None:
        raise ValueError(f"log_source_code(use_git=True): {path} is not inside a git work tree (or git is not "
                         "installed); call it without use_git to record the files alone")
    commit = git_output(where, "rev-parse", "HEAD")
    branch = git_output(where, "rev-parse", "--abbrev-ref", "HEAD")
    diff = git_output(where, "diff", "HEAD", "--binary", "--", str(path)) or b""
    facts = {"git_commit": commit.decode().strip() if commit else "(no commits)",
             "git_branch": branch.decode().strip() if branch else "",
             "git_root": top.decode().strip(), "git_dirty": bool(diff)}
    return facts, diff
