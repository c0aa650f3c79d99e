"""What every rank of a job would capture alike — installed packages, git state — taken once, by rank 0.

Listing every distribution costs a rank hundreds of metadata requests, ``git status`` one per tracked
file; on a parallel file system a 65,536-rank job asks that 65,536 times of one metadata server. Rank 0
writes what it captured to ``.capture.rank0.json`` in the shared run directory, with the fingerprint of the
installation it saw (the interpreter, and each ``sys.path`` entry with its modification time: installing or
removing a distribution changes its directory's). Another rank takes those facts only when its own
fingerprint is the same (a few ``stat`` calls) and it runs the same script from the same directory;
otherwise, or when rank 0's file does not come in time, it captures its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..storage.files import atomic_write_text
from ..storage.layout import SHARED_CAPTURE_FILE

MAX_SHARED_BYTES = 16 << 20  # a package list of thousands of distributions is well under a megabyte
SOURCE_FACTS = ("git_commit", "git_branch", "git_dirty", "git_remote")  # the script's own path and digest stay per rank


def fingerprint() -> dict[str, Any]:
    """The interpreter and what its import path holds (each entry's modification time), as JSON values."""
    entries = []
    for entry in sys.path:
        try:
            entries.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            entries.append([entry, None])
    return {"executable": sys.executable, "version": sys.version, "sys_path": entries}


def publish(run_dir: Path, packages: tuple[list[str], list[str]] | None, source: dict[str, Any],
            script: str | None) -> None:
    """Rank 0: write what it captured for the others (atomically: a rank never reads half of it)."""
    facts = {"fingerprint": fingerprint(), "working_dir": os.getcwd(), "script": script,
             "source": {name: source[name] for name in SOURCE_FACTS if name in source}}
    if packages is not None:
        facts["packages"], facts["local_packages"] = packages
    atomic_write_text(run_dir / SHARED_CAPTURE_FILE, json.dumps(facts, sort_keys=True))


def read_shared(run_dir: Path, script: str | None) -> dict[str, Any] | None:
    """Rank 0's facts, when they apply to this process (same installation, same script and directory), else
    None; FileNotFoundError while rank 0 has not written them."""
    try:
        with open(run_dir / SHARED_CAPTURE_FILE, "rb") as fh:  # one request: no stat before the open
            raw = fh.read(MAX_SHARED_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    if len(raw) > MAX_SHARED_BYTES:
        return None
    try:
        facts = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(facts, dict) or facts.get("fingerprint") != fingerprint():
        return None
    if facts.get("working_dir") != os.getcwd() or facts.get("script") != script:
        return None
    return facts


def shared_packages(facts: dict[str, Any] | None) -> tuple[list[str], list[str]] | None:
    """(installed, installed from a directory) from rank 0's facts, if it listed them."""
    if facts is None:
        return None
    installed, local = facts.get("packages"), facts.get("local_packages")
    if not (isinstance(installed, list) and isinstance(local, list)
            and all(isinstance(p, str) for p in [*installed, *local])):
        return None
    return installed, local


def shared_source(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rank 0's git facts, if it could tell (an empty dict: not inside a work tree)."""
    source = facts.get("source") if facts is not None else None
    if not isinstance(source, dict):
        return None
    return {name: source[name] for name in SOURCE_FACTS if name in source}
