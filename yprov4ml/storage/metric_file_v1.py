"""The metric file format of earlier releases (version 1): one file per series. Read only, for runs
recorded before version 2 (``metric_file``) put every series of a rank in one file.

Version 1, little-endian:

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

import struct
import zlib
from array import array
from pathlib import Path

from .metric_file import MetricData, read_header

FORMAT_VERSION = 1
CHUNK_MAGIC = b"YPMC"
CHUNK_HEAD = struct.Struct("<4sII")
POINT_BYTES = 24


def read_metric_file(path: str | Path) -> MetricData:
    """Read a metric file; damaged chunks are skipped (``truncated``, ``skipped_bytes``), the rest is read."""
    data = Path(path).read_bytes()
    header, pos = read_header(data, path, "yprov4ml_metric", FORMAT_VERSION)
    steps, times, values = array("q"), array("d"), array("d")
    skipped = 0
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
