"""The background thread that moves buffered metric points to their files, in chunks."""

from __future__ import annotations

import threading
from typing import Callable, Iterable

from .series import MetricSeries


class MetricWriter:
    """Background thread that moves buffered points to the metric files in chunks."""

    def __init__(self, series: Callable[[], Iterable[MetricSeries]], interval_s: float,
                 on_error: Callable[[BaseException], None]):
        self._series = series
        self._interval = interval_s
        self._on_error = on_error
        self._wake = threading.Event()
        self._stop = False
        self._drain_lock = threading.RLock()  # a signal handler may drain from inside a drain
        self._thread = threading.Thread(target=self._loop, name="yprov4ml-metric-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Ask for a flush soon (called from the hot path every ``save_after_n_logs`` points)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Write every buffered point now. Errors go to ``on_error``; points stay counted as lost."""
        with self._drain_lock:
            for series in list(self._series()):
                if not series.pending:
                    continue
                rows = series.take_pending()
                try:
                    series.write_chunk(rows)
                except Exception as exc:  # a full disk must not kill the training loop
                    self._on_error(exc)

    def close(self) -> None:
        """Stop the thread and write what is left, in the caller's thread."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.drain()
