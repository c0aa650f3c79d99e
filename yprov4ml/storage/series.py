"""Metric series: the in-memory buffer of the hot path and the running summary of what reached the file.

Logging a point appends a tuple to the series' deque (thread-safe, no lock, no
I/O). The writer (``storage.writer``) drains every deque and appends their
points to the rank's one metric file (``storage.metric_file``), then folds them
into each series' summary.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from pathlib import Path
from typing import Any

MAX_UNWRITTEN = 1 << 18  # points kept per series while the disk refuses writes (about 25 MB of scalars)


class MetricSeries:
    """One (metric, context) series of one rank: its buffer and running summary.

    ``kind`` is ``scalar`` (a float a point), ``vector`` (a list of floats a point) or ``indices``
    (the sample indices a step consumed: sample-level lineage).
    """

    __slots__ = (
        "key", "context", "number", "name", "kind", "unit", "path", "relpath", "pending", "next_step",
        "count", "first_step", "last_step", "min", "max", "last_value", "first_time", "last_time",
        "sha256", "declared", "unwritten", "lost", "elements", "distinct", "shape",
    )

    def __init__(self, key: str, context: str, number: int, name: str, path: Path, relpath: str,
                 unit: str | None = None, kind: str = "scalar", shape: list[int] | None = None):
        self.key = key
        self.context = context
        self.number = number  # the series' number in the rank's metric file
        self.name = name  # unique among the context's series: the PROV identifier's last part
        self.kind = kind
        self.unit = unit
        self.shape = shape  # a vector series: the shape of its first point (flattened in the file)
        self.path = path  # the rank's metric file, shared by its series
        self.relpath = relpath
        self.pending: deque = deque()
        self.next_step = 0
        self.count = 0
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.min: float | None = None
        self.max: float | None = None
        self.last_value: Any = None
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.sha256: str | None = None  # the metric file's, set when the run is finalised
        self.declared = False  # its declaration record is in the file
        self.unwritten: list[tuple] = []  # points of failed writes, retried with the next
        self.lost = 0  # points dropped because the disk refused them for too long
        self.elements = 0  # vector elements / sample indices written
        self.distinct: set[int] | None = set() if kind == "indices" else None

    def take_pending(self) -> list[tuple]:
        """Remove and return the points logged so far, after those a failed write left (safe while other
        threads append)."""
        pending = self.pending
        # popleft by popleft, each atomic, so a point appended meanwhile stays for the next drain; map over a C
        # method keeps the loop out of the interpreter (a comprehension cost ~400 instructions a point)
        rows = list(map(deque.popleft, repeat(pending, len(pending))))
        if self.unwritten:
            rows, self.unwritten = self.unwritten + rows, []
        return rows

    def keep_unwritten(self, rows: list[tuple]) -> None:
        """The disk refused ``rows``: keep the newest ``MAX_UNWRITTEN`` for the next try, count the rest lost."""
        self.unwritten = rows[-MAX_UNWRITTEN:]
        self.lost += len(rows) - len(self.unwritten)

    def summarise(self, steps: tuple, times: tuple, values: tuple) -> None:
        """Fold points that reached the file into the summary."""
        if self.kind == "scalar":
            # NaN is not a min or a max; min() and max() pass over a NaN (every comparison with it is false)
            # unless it comes first, so the values are filtered only then
            finite = values if values[0] == values[0] else [v for v in values if v == v]
        else:
            finite = [x for v in values for x in v if x == x]
            self.elements += sum(len(v) for v in values)
            if self.distinct is not None:
                for indices in values:
                    self.distinct.update(indices)
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
        figures = {
            "count": self.count, "first_step": self.first_step, "last_step": self.last_step,
            "min": self.min, "max": self.max, "first_time": self.first_time, "last_time": self.last_time,
        }
        if self.kind == "scalar":
            figures["last_value"] = self.last_value
        elif self.kind == "vector":
            figures.update(last_value=self.last_value, elements=self.elements, shape=self.shape)
        else:
            figures.update(samples=self.elements, distinct_samples=len(self.distinct or ()))
        return figures
