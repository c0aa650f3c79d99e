"""The metric file format: one header line, then CRC-checked binary chunks of points.

Metric file format (version 1), little-endian:

* one header line: UTF-8 JSON ending in ``\\n``, e.g.
  ``{"yprov4ml_metric": 1, "key": "loss", "context": "training", "rank": 0,
  "columns": ["step:int64", "time:float64", "value:float64"]}``
* then chunks: ``b"YPMC"``, ``uint32 n``, ``uint32 crc32`` of the body, then
  the body: ``n`` int64 steps, ``n`` float64 Unix times, ``n`` float64 values.
  A chunk cut short or damaged (a torn write, a zero-filled tail, a bad
  block) fails its length or checksum: the reader skips it, finds the next
  chunk marker and goes on, and flags the file as damaged.

24 bytes per point (plus 12 per chunk); float64 values (NaN and ±inf included) round-trip exactly.
"""

from __future__ import annotations

import json
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

FORMAT_VERSION = 1
CHUNK_MAGIC = b"YPMC"
CHUNK_HEAD = struct.Struct("<4sII")
POINT_BYTES = 24


def header_line(key: str, context: str, rank: int, unit: str | None = None) -> bytes:
    """The first line of a metric file."""
    header = {"yprov4ml_metric": FORMAT_VERSION, "key": key, "context": context, "rank": rank,
              "columns": ["step:int64", "time:float64", "value:float64"]}
    if unit:
        header["unit"] = unit
    return (json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8")


def encode_chunk(steps: Sequence[int], times: Sequence[float], values: Sequence[float]) -> bytes:
    """One chunk: magic, count, crc32, then the three columns."""
    body = b"".join((array("q", steps).tobytes(), array("d", times).tobytes(), array("d", values).tobytes()))
    return CHUNK_HEAD.pack(CHUNK_MAGIC, len(steps), zlib.crc32(body)) + body


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
    truncated: bool = False  # some bytes could not be read as whole chunks (skipped)
    skipped_bytes: int = 0

    def __len__(self) -> int:
        return len(self.values)


def read_metric_file(path: str | Path) -> MetricData:
    """Read a metric file; damaged chunks are skipped (``truncated``, ``skipped_bytes``), the rest is read."""
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
    pos, skipped = newline + 1, 0
    while pos < len(data):
        n = _whole_chunk_at(data, pos)
        if n is None:  # damaged here: resynchronise on the next marker whose chunk checks out
            following = data.find(CHUNK_MAGIC, pos + 1)
            while following >= 0 and _whole_chunk_at(data, following) is None:
                following = data.find(CHUNK_MAGIC, following + 1)
            end = following if following >= 0 else len(data)
            skipped += end - pos
            pos = end
            continue
        pos = _take_chunk(data, pos, n, steps, times, values)
    return MetricData(header.get("key", ""), header.get("context", ""), int(header.get("rank", 0)),
                      steps.tolist(), times.tolist(), values.tolist(), header.get("unit"), skipped > 0, skipped)


def _take_chunk(data: bytes, pos: int, n: int, steps: array, times: array, values: array) -> int:
    """Append the ``n`` points of the chunk at ``pos`` to the columns; the position after it."""
    body = pos + CHUNK_HEAD.size
    steps.frombytes(data[body: body + 8 * n])
    times.frombytes(data[body + 8 * n: body + 16 * n])
    values.frombytes(data[body + 16 * n: body + POINT_BYTES * n])
    return body + POINT_BYTES * n


def _whole_chunk_at(data: bytes, pos: int) -> int | None:
    """The point count of the intact chunk starting at ``pos``, or None."""
    if pos + CHUNK_HEAD.size > len(data):
        return None
    magic, n, crc = CHUNK_HEAD.unpack_from(data, pos)
    body = pos + CHUNK_HEAD.size
    end = body + POINT_BYTES * n
    if magic != CHUNK_MAGIC or end > len(data) or zlib.crc32(data[body:end]) != crc:
        return None
    return n


def read_points_from(path: str | Path, offset: int) -> tuple[list[int], list[float], list[float], int]:
    """The points of the whole chunks from byte ``offset`` on, and the offset after the last of them.

    For a reader that follows a file as it grows (the MLflow mirror): it stops
    at the first chunk that is not whole yet, and starts again there next time.
    Offset 0 means the start of the file (the header line is skipped).
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    pos = 0
    if offset == 0:
        newline = data.find(b"\n")
        if newline < 0:
            return [], [], [], 0
        pos = newline + 1
    steps, times, values = array("q"), array("d"), array("d")
    while (n := _whole_chunk_at(data, pos)) is not None:
        pos = _take_chunk(data, pos, n, steps, times, values)
    return steps.tolist(), times.tolist(), values.tolist(), offset + pos
