"""Copying and hashing logged files off the training thread.

A checkpoint's sha256 takes about a second per gigabyte, a large artifact's copy longer: done on the
training thread, they would stall training at every ``save_model_version``. One worker thread does them
in the order they were logged; each finished digest is written to the journal (``file_hashed``), so a
run killed in between keeps every digest computed so far and ``recover`` computes the rest from the files.
end_run waits for the queue before it writes the document.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

COPY_ON_THE_SPOT_BYTES = 16 << 20  # smaller artifacts are copied at once (cheap, and the copy is of that instant)


class BackgroundFiles:
    """A worker thread for file jobs (copy, hash), started on the first one."""

    def __init__(self, on_error: Callable[[str, BaseException], None]):
        self._jobs: queue.Queue = queue.Queue()
        self._on_error = on_error
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, what: str, job: Callable[[], None]) -> None:
        """Run ``job()`` in the worker thread; ``what`` names it if it fails."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="yprov4ml-files", daemon=True)
                self._thread.start()
        self._jobs.put((what, job))

    def _work(self) -> None:
        while True:
            what, job = self._jobs.get()
            try:
                job()
            except Exception as exc:  # a vanished or unreadable file: said, and the run goes on
                self._on_error(what, exc)
            finally:
                self._jobs.task_done()

    def pending(self) -> int:
        return self._jobs.unfinished_tasks

    def finish(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every job submitted so far is done; False if some are not."""
        done = threading.Event()
        self._jobs.put(("end of the queue", done.set))
        with self._lock:
            if self._thread is None:
                return True
        return done.wait(timeout_s)

