"""Metric series: the in-memory buffer of the hot path and the running summary of what reached the file.

Logging a point appends a tuple to the series' deque (thread-safe, no lock, no
I/O). The writer (``storage.writer``) drains the deques in chunks and appends
each chunk to the series' file (``storage.metric_file``), updating the summary.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from .metric_file import encode_chunk, header_line, read_metric_file

MAX_UNWRITTEN = 1 << 18  # points kept per series while the disk refuses writes (about 25 MB)


class MetricSeries:
    """One (metric, context) series of one rank: its buffer, file and running summary."""

    __slots__ = (
        "key", "context", "path", "relpath", "unit", "pending", "next_step",
        "count", "first_step", "last_step", "min", "max", "last_value",
        "first_time", "last_time", "sha256", "_header", "unwritten", "lost", "_good_size",
    )

    def __init__(self, key: str, context: str, path: Path, relpath: str, rank: int, unit: str | None = None):
        self.key = key
        self.context = context
        self.path = path
        self.relpath = relpath
        self.unit = unit
        self.pending: deque = deque()
        self.next_step = 0
        self.count = 0
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.min: float | None = None
        self.max: float | None = None
        self.last_value: float | None = None
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.sha256: str | None = None  # set when the run is finalised
        self._header = header_line(key, context, rank, unit)
        self.unwritten: list[tuple[int, float, float]] = []  # points of failed writes, retried with the next
        self.lost = 0  # points dropped because the disk refused them for too long
        self._good_size = 0  # the file's length up to its last whole chunk

    @classmethod
    def from_file(cls, path: Path, relpath: str, key: str, context: str, rank: int,
                  unit: str | None = None) -> "MetricSeries":
        """A series rebuilt from its file (recovery): the summary of every intact chunk."""
        series = cls(key, context, path, relpath, rank, unit)
        if path.is_file():
            data = read_metric_file(path)
            if data.values:
                series._summarise(tuple(data.steps), tuple(data.times), tuple(data.values))
                series.next_step = data.steps[-1] + 1
            series._header, series._good_size = b"", path.stat().st_size
        return series

    def take_pending(self) -> list[tuple[int, float, float]]:
        """Remove and return the points logged so far (safe while other threads append)."""
        pending = self.pending
        return [pending.popleft() for _ in range(len(pending))]

    def write_chunk(self, rows: list[tuple[int, float, float]]) -> None:
        """Append ``rows`` (after any points a failed write left) as one chunk and fold them into the summary.

        On a failed write (a full disk) the file is cut back to its last whole
        chunk, so later chunks never follow a torn one, and the points are kept
        for the next try (at most ``MAX_UNWRITTEN``; older ones are counted lost).
        """
        if self.unwritten:
            rows = self.unwritten + rows
        steps, times, values = zip(*rows)
        blob = self._header + encode_chunk(steps, times, values)
        try:
            with open(self.path, "ab") as fh:  # one write per chunk
                fh.write(blob)
        except OSError:
            self._cut_back()
            self.unwritten = rows[-MAX_UNWRITTEN:]
            self.lost += len(rows) - len(self.unwritten)
            raise
        self.unwritten = []
        self._good_size += len(blob)
        self._header = b""
        self._summarise(steps, times, values)

    def _cut_back(self) -> None:
        try:
            os.truncate(self.path, self._good_size)
        except OSError:
            pass  # the reader resynchronises on the next chunk marker anyway

    def _summarise(self, steps: tuple, times: tuple, values: tuple) -> None:
        finite = [v for v in values if v == v]  # NaN is not a min or a max
        if finite:
            lo, hi = min(finite), max(finite)
            self.min = lo if self.min is None else min(self.min, lo)
            self.max = hi if self.max is None else max(self.max, hi)
        if self.count == 0:
            self.first_step, self.first_time = steps[0], times[0]
        self.count += len(steps)
        self.last_step, self.last_time, self.last_value = steps[-1], times[-1], values[-1]

    def summary(self) -> dict:
        """The figures the PROV entity of this series carries."""
        return {
            "count": self.count, "first_step": self.first_step, "last_step": self.last_step,
            "min": self.min, "max": self.max, "last_value": self.last_value,
            "first_time": self.first_time, "last_time": self.last_time,
        }
