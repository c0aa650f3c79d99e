"""The metric file format: every metric series of one rank in one file, as CRC-checked binary records.

One file per rank (``metrics.rankN.ymetric``) whatever the number of series: a
parallel file system counts files, and thousands of ranks with dozens of
series each would otherwise put tens of thousands of them in one directory.

Format (version 2), little-endian:

* one header line: UTF-8 JSON ending in ``\\n``, e.g. ``{"yprov4ml_metrics": 2, "rank": 0}``;
* then records: ``magic(4) series(u32) count(u32) size(u32) crc32(u32)``, then ``size`` bytes of body.
  The CRC covers ``series``, ``count``, ``size`` and the body. The magic says the kind:

  - ``YPMD`` declares series ``series``: its body is UTF-8 JSON ``{"key", "context", "kind", "unit", "name"}``;
  - ``YPMC``: ``count`` scalar points: int64 steps, float64 Unix times, float64 values (24 bytes a point);
  - ``YPMV``: ``count`` vector points: int64 steps, float64 times, uint32 lengths, then the float64 elements;
  - ``YPMI``: ``count`` steps of sample indices (which samples each step consumed): int64 steps, float64
    times, uint32 lengths, then the int64 indices, zlib-compressed.

A record cut short or damaged (a torn write, a zero-filled tail, a bad block)
fails its length or checksum: the reader skips it, finds the next record marker
and goes on, and flags the series it could not attribute as damaged. Every count
and size read from the file is checked against the bytes that are there before
anything is allocated for it. Version 1 files (one file per series) are still
read: ``metric_file_v1``.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

FORMAT_VERSION = 2
HEAD = struct.Struct("<4sIIII")
DECLARE, SCALAR, VECTOR, INDICES = b"YPMD", b"YPMC", b"YPMV", b"YPMI"
KIND_OF = {SCALAR: "scalar", VECTOR: "vector", INDICES: "indices"}
MAGIC_OF = {kind: magic for magic, kind in KIND_OF.items()}
_MARKER = re.compile(b"YPM[DCVI]")
MAX_DECLARATION = 1 << 16
MAX_ELEMENTS = 1 << 26  # elements (vector values or indices) one record may hold: 512 MB unpacked
_FIELDS = struct.Struct("<III")


def header_line(rank: int) -> bytes:
    """The first line of a rank's metric file."""
    return (json.dumps({"yprov4ml_metrics": FORMAT_VERSION, "rank": rank}) + "\n").encode("utf-8")


def _record(magic: bytes, series: int, count: int, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(_FIELDS.pack(series, count, len(body))))
    return HEAD.pack(magic, series, count, len(body), crc) + body


def encode_declaration(series: int, key: str, context: str, kind: str, unit: str | None, name: str) -> bytes:
    """The record that names series ``series`` (written before its first points)."""
    body = json.dumps({"key": key, "context": context, "kind": kind, "unit": unit, "name": name},
                      ensure_ascii=False).encode("utf-8")
    return _record(DECLARE, series, 0, body)


def encode_points(series: int, kind: str, steps: Sequence[int], times: Sequence[float],
                  values: Sequence[Any]) -> bytes:
    """One record of points of a series: scalars (floats), vectors (float sequences) or index lists (ints)."""
    head = array("q", steps).tobytes() + array("d", times).tobytes()
    if kind == "scalar":
        return _record(SCALAR, series, len(steps), head + array("d", values).tobytes())
    lengths = array("I", (len(v) for v in values)).tobytes()
    if kind == "vector":
        flat = array("d")
        for vector in values:
            flat.extend(vector)
        return _record(VECTOR, series, len(steps), head + lengths + flat.tobytes())
    flat = array("q")
    for indices in values:
        flat.extend(indices)
    return _record(INDICES, series, len(steps), head + lengths + zlib.compress(flat.tobytes(), 1))


@dataclass
class MetricData:
    """A metric series read back: its points (a value is a float, a list of floats, or a list of indices)."""

    key: str
    context: str
    rank: int
    steps: list[int]
    times: list[float]
    values: list[Any]
    unit: str | None = None
    truncated: bool = False  # some bytes could not be read as whole records (skipped)
    skipped_bytes: int = 0
    kind: str = "scalar"
    name: str = ""

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class MetricsFile:
    """Every series of one rank's metric file, by series number."""

    rank: int
    series: dict[int, MetricData] = field(default_factory=dict)
    skipped_bytes: int = 0


def _decode(magic: bytes, count: int, body: bytes) -> tuple[list[int], list[float], list[Any]] | None:
    """The points of one record's body, or None when its sizes do not add up (a damaged record)."""
    if magic == DECLARE:
        return None
    fixed = 24 if magic == SCALAR else 20
    if fixed * count > len(body):
        return None
    steps, times = array("q"), array("d")
    steps.frombytes(body[: 8 * count])
    times.frombytes(body[8 * count: 16 * count])
    if magic == SCALAR:
        if len(body) != 24 * count:
            return None
        values = array("d")
        values.frombytes(body[16 * count:])
        return steps.tolist(), times.tolist(), values.tolist()
    lengths = array("I")
    lengths.frombytes(body[16 * count: 20 * count])
    total = sum(lengths)
    rest = body[20 * count:]
    if total > MAX_ELEMENTS:
        return None
    if magic == VECTOR:
        if len(rest) != 8 * total:
            return None
        flat = array("d")
    else:
        unpacker = zlib.decompressobj()
        try:
            rest = unpacker.decompress(rest, 8 * total)
        except zlib.error:
            return None
        if len(rest) != 8 * total or not unpacker.eof or unpacker.unconsumed_tail:
            return None
        flat = array("q")
    flat.frombytes(rest)
    values, start = [], 0
    for length in lengths:
        values.append(flat[start: start + length].tolist())
        start += length
    return steps.tolist(), times.tolist(), values


def _whole_record_at(data: bytes, pos: int) -> tuple[bytes, int, int, bytes] | None:
    """(magic, series, count, body) of the intact record at ``pos``, or None."""
    if pos + HEAD.size > len(data):
        return None
    magic, series, count, size, crc = HEAD.unpack_from(data, pos)
    start = pos + HEAD.size
    if _MARKER.fullmatch(magic) is None or size > len(data) - start:
        return None
    body = data[start: start + size]
    if zlib.crc32(body, zlib.crc32(_FIELDS.pack(series, count, size))) != crc:
        return None
    return magic, series, count, body


def _declared(body: bytes) -> dict[str, Any] | None:
    if len(body) > MAX_DECLARATION:
        return None
    try:
        found = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("key"), str) or \
            not isinstance(found.get("context"), str) or found.get("kind") not in MAGIC_OF:
        return None
    return found


def parse_records(data: bytes, pos: int, rank: int, into: MetricsFile, resync: bool = True) -> int:
    """Fold the records of ``data`` from ``pos`` into ``into``; the position after the last whole record.

    With ``resync`` a damaged stretch is skipped up to the next intact record (counted in
    ``skipped_bytes``); without it, reading stops there (a file that is still being written).
    """
    while pos < len(data):
        found = _whole_record_at(data, pos)
        points = None if found is None else (_declared(found[3]) if found[0] == DECLARE
                                             else _decode(found[0], found[2], found[3]))
        if points is None:
            if not resync:
                return pos
            following = pos + 1
            while (match := _MARKER.search(data, following)) is not None and \
                    _whole_record_at(data, match.start()) is None:
                following = match.start() + 1
            end = match.start() if match is not None else len(data)
            into.skipped_bytes += end - pos
            pos = end
            continue
        magic, series, _, body = found  # type: ignore[misc]
        pos += HEAD.size + len(body)
        if magic == DECLARE:
            declared = into.series.get(series)
            if declared is None:
                into.series[series] = MetricData(points["key"], points["context"], rank, [], [], [],
                                                 points.get("unit"), kind=points["kind"], name=str(points.get("name")))
            continue
        target = into.series.get(series)
        if target is None:  # its declaration was lost: keep the points under the number alone
            target = into.series[series] = MetricData("", "", rank, [], [], [], kind=KIND_OF[magic], truncated=True)
        if target.kind != KIND_OF[magic]:
            target.truncated = True  # points of another kind under this number: not this series'
            continue
        steps, times, values = points
        target.steps += steps
        target.times += times
        target.values += values
    return pos


def read_header(data: bytes, path: Any, version_key: str = "yprov4ml_metrics",
                expected: int = FORMAT_VERSION) -> tuple[dict[str, Any], int]:
    """The JSON header line of a metric file (of either format) and where the records start."""
    newline = data.find(b"\n", 0, 4096)
    if newline < 0:
        raise ValueError(f"{path} is not a yprov4ml metric file: no header line")
    try:
        header = json.loads(data[:newline])
        version = header[version_key]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a yprov4ml metric file: bad header ({exc})") from None
    if version != expected:
        raise ValueError(f"{path}: metric file format {version} is not supported (expected {expected})")
    return header, newline + 1


def read_metrics_file(path: str | Path) -> MetricsFile:
    """Every series of a rank's metric file; damaged records are skipped (and their bytes counted)."""
    data = Path(path).read_bytes()
    header, pos = read_header(data, path)
    rank = header.get("rank") if isinstance(header.get("rank"), int) else 0
    found = MetricsFile(rank)
    parse_records(data, pos, rank, found)
    if found.skipped_bytes:
        for series in found.series.values():
            series.truncated, series.skipped_bytes = True, found.skipped_bytes
    return found


def read_records_from(path: str | Path, offset: int) -> tuple[MetricsFile, int]:
    """The whole records from byte ``offset`` on, and the offset after the last of them.

    For a reader that follows the file as it grows (the MLflow mirror): it stops at the first
    record that is not whole yet and starts there next time. Offset 0 is the start of the file.
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    pos = 0
    found = MetricsFile(0)
    if offset == 0:
        if b"\n" not in data:
            return found, 0
        header, pos = read_header(data, path)
    end = parse_records(data, pos, found.rank, found, resync=False)
    return found, offset + end
