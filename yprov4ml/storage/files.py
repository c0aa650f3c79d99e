"""File helpers: atomic writes, hashing, and paths that cannot escape the run directory."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Iterator

from ..errors import ArtifactError, DocumentError

MAX_DOCUMENT_BYTES = 1 << 28  # 256 MiB: checked before a JSON document is read into memory

_CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def append_line(path: str | os.PathLike, line: str, create: bool = True) -> None:
    """Append ``line`` with one ``O_APPEND`` write: whole, even while other processes append to the file."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0), 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path``, for writing before an atomic rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without error (readers see the old or the
    new file, never half of one); on error ``path`` is left as it was."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "xb") as fh:  # mode follows the umask, unlike mkstemp's 0600
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def inside(root: Path, relative: str) -> Path:
    """Resolve ``relative`` under ``root``; refuse names that would land outside it."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ArtifactError(
            f"artifact name {relative!r} would escape the run directory: "
            "give a relative name without '..' (e.g. name='plots/loss.png')"
        )
    target = resolve_inside(root, pure.as_posix())
    if target is None:
        raise ArtifactError(f"artifact name {relative!r} resolves outside the run directory {root}")
    return target


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``relative`` (read from a file) resolved under ``root``, symlinks included; None when it leaves ``root``."""
    if not relative or "\0" in relative:
        return None
    base = root.resolve()
    target = (base / relative).resolve()
    return target if target.is_relative_to(base) else None


def read_json(path: Path) -> Any:
    """Parse a JSON file read from outside; DocumentError naming the file when it is unreadable, not
    UTF-8 JSON, larger than ``MAX_DOCUMENT_BYTES`` or nested too deeply to parse."""
    return read_json_and_bytes(path)[0]


def read_json_and_bytes(path: Path) -> tuple[Any, bytes]:
    """``read_json``, with the file's bytes as they were read (to hash or copy exactly what was parsed)."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"{path}: {size} bytes, more than the {MAX_DOCUMENT_BYTES} a PROV-JSON document "
                                "may have here; is it the right file?")
        raw = path.read_bytes()
        return json.loads(raw.decode("utf-8")), raw
    except UnicodeDecodeError:
        raise DocumentError(f"{path}: not a text file (PROV-JSON is UTF-8 JSON)") from None
    except RecursionError:
        raise DocumentError(f"{path}: nested too deeply to be a PROV-JSON document") from None
    except ValueError as exc:  # invalid JSON, an integer of thousands of digits
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"{path}: invalid JSON ({exc})") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def tree_size_and_sha256(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, or of a directory as the hash of its files' names and hashes.

    Symbolic links inside a directory are hashed as links (their target text), never followed.
    """
    if path.is_file():
        return path.stat().st_size, sha256_of(path)
    digest, size = hashlib.sha256(), 0
    for root, dirs, files in os.walk(path):  # os.walk does not descend into directory symlinks
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            item = Path(root, name)
            rel = item.relative_to(path).as_posix()
            if item.is_symlink():
                digest.update(f"{rel}\0link:{os.readlink(item)}\n".encode())
            elif item.is_file():
                size += item.stat().st_size
                digest.update(f"{rel}\0{sha256_of(item)}\n".encode())
    return size, digest.hexdigest()
