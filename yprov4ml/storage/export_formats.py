"""Metric series written again in the formats other tools read: CSV, netCDF, Zarr, Parquet.

The rank's chunked, checksummed ``metrics.rankN.ymetric`` file stays the crash-safe primary;
these are copies for analysis, written at end_run (``start_run(
metrics_file_type=...)``, as upstream 3.x does) or afterwards (``yprov4ml
export RUN --format ...``). Each series becomes one file with three columns —
``step``, ``time`` (Unix seconds), ``value`` — and its key, context, rank and
unit as metadata. netCDF and Zarr go through xarray, Parquet through pyarrow
(optional extras); CSV needs nothing.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .files import atomic_write_text
from .metric_file import MetricData

FORMATS = {"csv": (".csv", ()), "netcdf": (".nc", ("xarray", "netCDF4")), "zarr": (".zarr", ("xarray", "zarr")),
           "parquet": (".parquet", ("pyarrow",))}
EXTRA = {"netcdf": "netcdf", "zarr": "zarr", "parquet": "parquet"}
# What ``use_compressor`` may name, per format (upstream: zlib for netCDF, a codec for Zarr).
COMPRESSORS = {"csv": (), "netcdf": ("zlib",), "zarr": ("zstd", "gzip", "blosc"),
               "parquet": ("snappy", "gzip", "zstd", "brotli", "lz4")}


def check_format(file_type: Any, separator: Any = ",", compressor: Any = None) -> tuple[str, str, str | None]:
    """The checked (format, separator, compressor); ValueError naming the choices and the missing extra."""
    name = str(getattr(file_type, "value", file_type)).lower()  # an upstream-style enum member works too
    if name not in FORMATS:
        raise ValueError(f"metrics file type {file_type!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
        raise ValueError(f"csv_separator {separator!r} must be one character (not a quote or a line break)")
    missing = [module for module in FORMATS[name][1] if find_spec(module) is None]
    if missing:
        raise ValueError(f"metrics file type {name!r} needs {', '.join(missing)}: "
                         f"pip install 'yprov4ml[{EXTRA[name]}]'")
    if compressor in (None, False, ""):
        return name, separator, None
    chosen = COMPRESSORS[name][0] if compressor is True and COMPRESSORS[name] else str(
        getattr(compressor, "value", compressor)).lower()
    if chosen not in COMPRESSORS[name]:
        raise ValueError(f"use_compressor {compressor!r} does not apply to {name}: "
                         f"{', '.join(COMPRESSORS[name]) or 'CSV files are written uncompressed'}")
    return name, separator, chosen


def _metadata(data: MetricData) -> dict[str, str]:
    return {"key": data.key, "context": data.context, "rank": str(data.rank), "unit": data.unit or ""}


def write_series(data: MetricData, target_stem: Path, file_type: str, separator: str = ",",
                 compressor: str | None = None) -> Path:
    """Write one series as ``target_stem`` + the format's suffix; returns the path written."""
    target = target_stem.with_name(target_stem.name + FORMATS[file_type][0])
    target.parent.mkdir(parents=True, exist_ok=True)
    if file_type == "csv":
        lines = [separator.join(("step", "time", "value"))]
        lines += [separator.join((str(s), repr(t), repr(v))) for s, t, v in zip(data.steps, data.times, data.values)]
        atomic_write_text(target, "\n".join(lines) + "\n")
    elif file_type == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"step": pa.array(data.steps, pa.int64()), "time": pa.array(data.times, pa.float64()),
                          "value": pa.array(data.values, pa.float64())}).replace_schema_metadata(_metadata(data))
        partial = target.with_name(f".{target.name}.partial")
        pq.write_table(table, partial, compression=compressor or "none")
        partial.replace(target)
    else:
        _write_xarray(data, target, file_type, compressor)
    return target


def _write_xarray(data: MetricData, target: Path, file_type: str, compressor: str | None) -> None:
    import shutil

    import numpy as np
    import xarray as xr

    dataset = xr.Dataset({"step": ("point", np.asarray(data.steps, dtype=np.int64)),
                          "time": ("point", np.asarray(data.times, dtype=np.float64)),
                          "value": ("point", np.asarray(data.values, dtype=np.float64))}, attrs=_metadata(data))
    partial = target.with_name(f".{target.name}.partial")
    if partial.is_dir():  # what an earlier, interrupted export left
        shutil.rmtree(partial)
    partial.unlink(missing_ok=True)
    if file_type == "netcdf":
        encoding = {v: {"zlib": True, "complevel": 4} for v in dataset.data_vars} if compressor else None
        dataset.to_netcdf(partial, engine="netcdf4", encoding=encoding)
    else:
        encoding = None
        if compressor:
            from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

            codec = {"zstd": ZstdCodec(), "gzip": GzipCodec(), "blosc": BloscCodec()}[compressor]
            encoding = {v: {"compressors": (codec,)} for v in dataset.data_vars}
        dataset.to_zarr(partial, mode="w", encoding=encoding, consolidated=False)  # Zarr 3: no consolidation
    if target.is_dir():
        shutil.rmtree(target)
    partial.replace(target)


def export_stem(run_dir: Path, context: str, name: str, rank: int) -> Path:
    """Where a series' copy goes, without its extension: ``metrics/<context>/<name>.rank<N>``."""
    from .names import safe_part

    return run_dir / "metrics" / safe_part(context) / f"{name}.rank{rank}"
