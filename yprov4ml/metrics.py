"""Metric series: the in-memory buffers of the hot path and the metric files on disk.

Logging a point appends a tuple to the series' deque (thread-safe, no lock, no
I/O). A background writer drains the deques in chunks and appends each chunk to
the series' file in the binary format below, updating the series summary.

Metric file format (version 1), little-endian:

* one header line: UTF-8 JSON ending in ``\\n``, e.g.
  ``{"yprov4ml_metric": 1, "key": "loss", "context": "training", "rank": 0,
  "columns": ["step:int64", "time:float64", "value:float64"]}``
* then chunks: ``b"YPMC"``, ``uint32 n``, ``uint32 crc32`` of the body, then
  the body: ``n`` int64 steps, ``n`` float64 Unix times, ``n`` float64 values.
  A chunk cut short or damaged by a crash (a torn write, a zero-filled tail)
  fails its length or checksum and is ignored, with the chunks after it.

24 bytes per point (plus 12 per chunk); float64 values (NaN and ±inf included) round-trip exactly.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from array import array
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

FORMAT_VERSION = 1
CHUNK_MAGIC = b"YPMC"
_CHUNK_HEAD = struct.Struct("<4sII")


class MetricSeries:
    """One (metric, context) series of one rank: its buffer, file and running summary."""

    __slots__ = (
        "key", "context", "path", "relpath", "unit", "pending", "next_step",
        "count", "first_step", "last_step", "min", "max", "last_value",
        "first_time", "last_time", "sha256", "_header",
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
        header = {"yprov4ml_metric": FORMAT_VERSION, "key": key, "context": context, "rank": rank,
                  "columns": ["step:int64", "time:float64", "value:float64"]}
        if unit:
            header["unit"] = unit
        self._header = (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8")

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
        return series

    def take_pending(self) -> list[tuple[int, float, float]]:
        """Remove and return the points logged so far (safe while other threads append)."""
        pending = self.pending
        return [pending.popleft() for _ in range(len(pending))]

    def write_chunk(self, rows: list[tuple[int, float, float]]) -> None:
        """Append ``rows`` to the metric file as one chunk and fold them into the summary."""
        steps, times, values = zip(*rows)
        body = b"".join((array("q", steps).tobytes(), array("d", times).tobytes(), array("d", values).tobytes()))
        blob = _CHUNK_HEAD.pack(CHUNK_MAGIC, len(rows), zlib.crc32(body)) + body
        # One write per chunk: a crash leaves whole chunks and at most one torn tail.
        with open(self.path, "ab") as fh:
            fh.write(self._header + blob)
        self._header = b""
        self._summarise(steps, times, values)

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


@dataclass
class MetricData:
    """A metric series read back from its file."""

    key: str
    context: str
    rank: int
    steps: list[int]
    times: list[float]
    values: list[float]
    unit: str | None = None
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.values)


def read_metric_file(path: str | Path) -> MetricData:
    """Read a metric file; a chunk torn by a crash is dropped and flagged as ``truncated``."""
    data = Path(path).read_bytes()
    newline = data.find(b"\n")
    if newline < 0:
        raise ValueError(f"{path} is not a yprov4ml metric file: no header line")
    try:
        header = json.loads(data[:newline])
        version = header["yprov4ml_metric"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a yprov4ml metric file: bad header ({exc})") from None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: metric file format {version} is not supported (expected {FORMAT_VERSION})")
    steps, times, values = array("q"), array("d"), array("d")
    pos, truncated = newline + 1, False
    while pos < len(data):
        if pos + _CHUNK_HEAD.size > len(data):
            truncated = True
            break
        magic, n, crc = _CHUNK_HEAD.unpack_from(data, pos)
        body = pos + _CHUNK_HEAD.size
        end = body + 24 * n
        if magic != CHUNK_MAGIC or end > len(data) or zlib.crc32(data[body:end]) != crc:
            truncated = True
            break
        steps.frombytes(data[body: body + 8 * n])
        times.frombytes(data[body + 8 * n: body + 16 * n])
        values.frombytes(data[body + 16 * n: end])
        pos = end
    return MetricData(header.get("key", ""), header.get("context", ""), int(header.get("rank", 0)),
                      steps.tolist(), times.tolist(), values.tolist(), header.get("unit"), truncated)


def as_metric_value(value: object, key: str) -> float:
    """Convert a user's metric value to float, or raise a clear error (slow path only)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)  # numpy / torch scalars and one-element tensors
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            return as_metric_value(item(), key)
        except (ValueError, RuntimeError):
            pass
    from .errors import InvalidMetricError

    raise InvalidMetricError(
        f"metric {key!r}: value {value!r} ({type(value).__name__}) is not a number; "
        "log a float or int (for a tensor, loss.item())"
    )


def as_step(step: object, key: str) -> int:
    """Validate a step (slow path): an integer that fits in int64."""
    from .errors import InvalidMetricError

    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidMetricError(f"metric {key!r}: step {step!r} must be an integer (e.g. the epoch or batch index)")
    value = step.__index__()
    if not -(1 << 63) <= value < (1 << 63):
        raise InvalidMetricError(f"metric {key!r}: step {value} does not fit in 64 bits")
    return value
