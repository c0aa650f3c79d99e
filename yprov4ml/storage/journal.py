"""The run journal: an append-only JSON-lines file of every non-metric event, written as it happens.

It is what survives a crash: together with the metric files it holds the whole
record up to the last flush. It is opened with O_EXCL, so two processes can
never write the same rank of the same run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator


class Journal:
    """Writer side: one line per event, one ``write`` system call each, nothing buffered in the process."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._torn = False  # the last line was cut short (full disk): start the next one on a new line
        self._lock = threading.RLock()  # re-entrant: a signal handler may write while a write is under way

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; raises ProvenanceDirError when the disk refuses it (nothing half-recorded)."""
        line = json.dumps({"event": event, **fields}, ensure_ascii=False, default=str) + "\n"
        data = (b"\n" if self._torn else b"") + line.encode("utf-8")
        with self._lock:
            if self._fd is None:
                return
            try:
                written = os.write(self._fd, data)
                self._torn = written < len(data)
                if self._torn:
                    raise OSError(28, "No space left on device (the event was cut short)")
            except OSError as exc:
                from ..errors import ProvenanceDirError

                raise ProvenanceDirError(
                    f"cannot record {event!r} in {self.path}: {exc.strerror or exc}. "
                    "Free space or fix permissions there; nothing of this call was recorded."
                ) from exc

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a journal; a line torn by a crash or a full disk is skipped."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and "event" in event:
                yield event


TAIL_BYTES = 65536  # the end event is the journal's last line or close to it


def last_event(path: Path, kind: str) -> dict[str, Any] | None:
    """The last event of kind ``kind`` among the journal's final lines (reads only its tail)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - TAIL_BYTES))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if f'"event": "{kind}"' not in line:
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(event, dict) and event.get("event") == kind:
            return event
    return None
