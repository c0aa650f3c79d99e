"""The background thread that moves buffered metric points to the rank's metric file, in chunks."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

from .metric_file import encode_declaration, encode_points, header_line
from .series import MetricSeries

MAX_RECORD_ELEMENTS = 1 << 20  # values (vector elements, indices) per record: a record stays a few MB


class MetricFileWriter:
    """Appends records to one rank's metric file: one ``write`` a drain, cut back to whole records on failure.

    The file stays open from the first drain to ``close``: on a parallel file system every open is a
    metadata request to a shared server, at every flush of every rank.
    """

    def __init__(self, path: Path, rank: int):
        self.path = path
        self._header = header_line(rank)
        self._good_size = 0  # the file's length up to its last whole record
        self._fd: int | None = None

    def write(self, batch: list[tuple[MetricSeries, list[tuple]]]) -> None:
        """Append every series' rows (declaring new series first) in one write, then fold them into the
        summaries. On a failed write (a full disk) the file is cut back to its last whole record, so that
        later records never follow a torn one, and the rows are kept for the next try."""
        parts = [self._header]
        columns = []  # each record's (steps, times, values), transposed once for the file and the summary
        for series, rows in batch:
            if not series.declared:
                parts.append(encode_declaration(series.number, series.key, series.context, series.kind,
                                                series.unit, series.name))
            for chunk in _chunks(series.kind, rows):
                steps, times, values = zip(*chunk)
                parts.append(encode_points(series.number, series.kind, steps, times, values))
                columns.append((series, steps, times, values))
        blob = b"".join(parts)
        try:
            self._append(blob)  # one write per drain, whatever the number of series
        except OSError:
            self.close()  # the next try opens the file again (an NFS handle gone stale, a file put back)
            self._cut_back()
            for series, rows in batch:
                series.keep_unwritten(rows)
            raise
        self._good_size += len(blob)
        self._header = b""
        for series, _ in batch:
            series.declared = True
        for series, steps, times, values in columns:
            series.summarise(steps, times, values)

    def _append(self, blob: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        view = memoryview(blob)
        while view:  # a short write (a signal, a nearly full disk): the rest follows, or OSError
            written = os.write(self._fd, view)
            if not written:
                raise OSError(errno.ENOSPC, "the metric file takes no more bytes")
            view = view[written:]

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _cut_back(self) -> None:
        try:
            os.truncate(self.path, self._good_size)
        except OSError:
            pass  # the reader resynchronises on the next record marker anyway


def _chunks(kind: str, rows: list[tuple]) -> Iterable[list[tuple]]:
    """``rows`` in records of at most ``MAX_RECORD_ELEMENTS`` values (scalars: one record)."""
    if kind == "scalar":
        yield rows
        return
    chunk: list[tuple] = []
    elements = 0
    for row in rows:
        if chunk and elements + len(row[2]) > MAX_RECORD_ELEMENTS:
            yield chunk
            chunk, elements = [], 0
        chunk.append(row)
        elements += len(row[2])
    if chunk:
        yield chunk


class MetricWriter:
    """Background thread that moves buffered points to the metric file in chunks."""

    def __init__(self, file: MetricFileWriter, series: Callable[[], Iterable[MetricSeries]], interval_s: float,
                 on_error: Callable[[BaseException], None]):
        self.file = file
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
        if not self._wake.is_set():  # set() takes the event's lock and notifies: only when it changes anything
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Write every buffered point now. Errors go to ``on_error``; the points are kept for the next try."""
        with self._drain_lock:
            batch = [(series, rows) for series in list(self._series())
                     if (series.pending or series.unwritten) and (rows := series.take_pending())]
            if not batch:
                return
            try:
                self.file.write(batch)
            except Exception as exc:  # a full disk must not kill the training loop
                self._on_error(exc)

    def close(self) -> None:
        """Stop the thread and write what is left, in the caller's thread."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.drain()
        self.file.close()
