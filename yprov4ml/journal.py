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
    """Writer side: one line per event, flushed to the OS at once."""

    def __init__(self, path: Path):
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; raises OSError when the disk refuses it."""
        line = json.dumps({"event": event, **fields}, ensure_ascii=False, default=str)
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a journal; a last line torn by a crash is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except ValueError:
                return
