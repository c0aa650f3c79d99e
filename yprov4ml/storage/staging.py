"""Node-local staging: a rank writes its files to a fast local directory and moves them, at its end, into the
shared run directory, each file atomically (a reader of the shared directory sees no half file)."""

from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path

STAGE_VARIABLE = "YPROV4ML_STAGE_DIR"


def stage_root(given: str | os.PathLike | None) -> Path | None:
    """The node-local directory to stage in: the argument, else ``$YPROV4ML_STAGE_DIR``, else None. ``%n`` in
    it is the node's name (Slurm's, else the host's), as in Slurm's own file patterns."""
    chosen = given if given is not None else os.environ.get(STAGE_VARIABLE) or None
    if chosen is None:
        return None
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    return Path(os.fspath(chosen).replace("%n", node)).absolute()


def move_into(staged: Path, shared: Path) -> list[Path]:
    """Move every file under ``staged`` to the same place under ``shared`` (merging folders the ranks share,
    such as ``artifacts/``), then remove the emptied stage folders. Returns the files moved, in place."""
    moved = []
    for root, dirs, files in os.walk(staged, topdown=False):
        for name in sorted(files):
            source = Path(root, name)
            target = shared / source.relative_to(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            _move_file(source, target)
            moved.append(target)
        for name in dirs:
            try:
                Path(root, name).rmdir()
            except OSError:  # a link, or something left behind by another writer: kept, not lost
                pass
    try:
        staged.rmdir()
    except OSError:
        pass
    return moved


def _move_file(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)  # same file system: one atomic rename
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.{os.getpid()}.staging")
    try:
        shutil.copy2(source, partial, follow_symlinks=False)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)  # across file systems: copy beside the target, then one atomic rename
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    source.unlink()
