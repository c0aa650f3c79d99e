"""Metric series as CSV, netCDF, Zarr and Parquet: at end_run (upstream's metrics_file_type) and afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

import yprov4ml
from yprov4ml.prov.decode import prov_type

from conftest import assert_valid_prov

POINTS = [(0, 1.5), (1, 0.25), (2, float("nan")), (3, -2.0)]


def _log(**options):
    def record(save_dir):
        with yprov4ml.start_run("www.example.org", "export", save_dir, **options) as run:
            for step, value in POINTS:
                yprov4ml.log_metric("loss", value, yprov4ml.Context.TRAINING, step)
            yprov4ml.log_metric("acc", 0.5, "Validation", 0)
        return run
    return record


def _same_points(steps, values):
    assert list(steps) == [s for s, _ in POINTS]
    for got, (_, want) in zip(values, POINTS):
        assert (got != got and want != want) or got == want


def test_csv_at_end_run_with_upstreams_options(save_dir):
    run = _log(metrics_file_type="csv", csv_separator=";", use_run_id="upstream-id")(save_dir)
    assert run.run_id == "upstream-id"
    text = (run.run_dir / "metrics" / "training" / "loss.rank0.csv").read_text().splitlines()
    assert text[0] == "step;time;value" and len(text) == 1 + len(POINTS)
    _same_points([int(line.split(";")[0]) for line in text[1:]], [float(line.split(";")[2]) for line in text[1:]])
    doc = assert_valid_prov(run.prov_path)
    series = {v["yprov:key"]: v for v in doc["entity"].values() if prov_type(v) == "yprov:MetricSeries"}
    assert series["loss"]["yprov:exported_as"] == "metrics/training/loss.rank0.csv"
    assert (run.run_dir / "metrics.rank0.ymetric").is_file()  # the primary stays


@pytest.mark.parametrize("file_type, compressor", [("netcdf", True), ("zarr", "zstd"), ("netcdf", None)])
def test_netcdf_and_zarr_through_xarray(save_dir, file_type, compressor):
    xr = pytest.importorskip("xarray")
    run = _log(metrics_file_type=file_type, use_compressor=compressor)(save_dir)
    suffix = ".nc" if file_type == "netcdf" else ".zarr"
    path = run.run_dir / "metrics" / "training" / f"loss.rank0{suffix}"
    dataset = xr.open_dataset(path, engine="netcdf4") if file_type == "netcdf" else \
        xr.open_dataset(path, engine="zarr", consolidated=False)
    _same_points(dataset["step"].values, dataset["value"].values)
    assert dataset.attrs["key"] == "loss" and dataset.attrs["context"] == "training"
    if file_type == "netcdf" and compressor:
        assert dataset["value"].encoding.get("zlib") is True
    dataset.close()


def test_export_afterwards_as_parquet_and_csv(save_dir, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    run = _log()(save_dir)
    assert not list(run.run_dir.rglob("*.csv"))  # nothing but the primary unless asked
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "export", str(run.run_dir), "--format",
                           "parquet", "--compressor", "zstd", "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out / "metrics" / "training" / "loss.rank0.parquet")
    _same_points(table["step"].to_pylist(), table["value"].to_pylist())
    assert table.schema.metadata[b"context"] == b"training"
    assert (out / "metrics" / "validation" / "acc.rank0.parquet").is_file()
    again = subprocess.run([sys.executable, "-m", "yprov4ml.tools.cli", "export", str(save_dir / "export"),
                            "--format", "csv", "-o", str(tmp_path / "csv")], capture_output=True, text=True)
    assert again.returncode == 0 and (tmp_path / "csv" / run.run_id / "metrics" / "training" / "loss.rank0.csv").is_file()


def test_a_separator_alone_means_upstreams_default_csv_copies(save_dir):
    with yprov4ml.start_run("www.example.org", "semicolons", save_dir, csv_separator=";") as run:
        yprov4ml.log_metric("loss", 0.5, step=0)
    lines = (run.run_dir / "metrics" / "training" / "loss.rank0.csv").read_text().splitlines()
    assert lines == ["step;time;value", lines[1]] and lines[1].startswith("0;") and lines[1].endswith(";0.5")


@pytest.mark.parametrize("options, pattern", [
    ({"metrics_file_type": "xlsx"}, "not one of csv, netcdf, zarr, parquet"),
    ({"use_compressor": "gzip"}, "does not apply to csv"),  # no file type: upstream's default, CSV
    ({"metrics_file_type": "netcdf", "use_compressor": "zstd"}, "does not apply to netcdf: zlib"),
    ({"metrics_file_type": "csv", "csv_separator": "\n"}, "one character"),
    ({"run_id": "a", "use_run_id": "b"}, "disagree"),
])
def test_bad_export_options_are_refused_before_the_run_starts(save_dir, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        yprov4ml.start_run("www.example.org", "bad", save_dir, **options)
    assert yprov4ml.active_run() is None and not (save_dir / "bad").exists()
