"""Metric points: exact round-trip, chunked writes with bounded memory, thread safety."""

from __future__ import annotations

import os
import math
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import yprov4ml
from yprov4ml.storage.metric_file import read_metrics_file


def written(series):
    """What the rank's metric file holds of ``series``."""
    return read_metrics_file(series.path).series[series.number]


def test_special_floats_and_steps_round_trip_exactly(save_dir):
    values = [0.1, 1e-308, 5e-324, 1.7976931348623157e308, -0.0, float("nan"), float("inf"), float("-inf"), 2**53]
    with yprov4ml.start_run(experiment_name="exact", provenance_save_dir=save_dir, save_after_n_logs=3) as run:
        for i, v in enumerate(values):
            yprov4ml.log_metric("x", v, step=i * 1_000_000_007)
    data = yprov4ml.load_run(run.run_dir).metric("x")
    assert data.steps == [i * 1_000_000_007 for i in range(len(values))]
    assert [struct.pack("<d", v) for v in data.values] == [struct.pack("<d", float(v)) for v in values]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True)),
                min_size=1, max_size=60))
def test_any_float64_and_int64_step_round_trips(tmp_path_factory, points):
    save_dir = tmp_path_factory.mktemp("h")
    with yprov4ml.start_run(experiment_name="h", provenance_save_dir=save_dir, save_after_n_logs=7) as run:
        for step, value in points:
            yprov4ml.log_metric("m", value, yprov4ml.Context.VALIDATION, step)
    data = yprov4ml.load_run(run.run_dir).metric("m", "validation")
    assert data.steps == [s for s, _ in points]
    assert [struct.pack("<d", v) for v in data.values] == [struct.pack("<d", v) for _, v in points]


def test_points_reach_the_file_in_chunks_while_the_run_goes_on(save_dir):
    run = yprov4ml.start_run(experiment_name="chunks", provenance_save_dir=save_dir, save_after_n_logs=50)
    for i in range(1000):
        yprov4ml.log_metric("loss", float(i), step=i)
    series = run.record.metrics["loss", "training"]
    run._writer.drain()  # what the background writer does once woken
    assert len(series.pending) == 0  # memory holds no backlog
    assert len(written(series)) == 1000
    yprov4ml.end_run()


def test_summary_ignores_nan_for_min_and_max(save_dir):
    with yprov4ml.start_run(experiment_name="nan", provenance_save_dir=save_dir) as run:
        for v in (3.0, float("nan"), -1.0, float("nan")):
            yprov4ml.log_metric("v", v)
    summary = run.record.metrics["v", "training"].summary()
    assert summary["min"] == -1.0 and summary["max"] == 3.0 and math.isnan(summary["last_value"])
    assert summary["count"] == 4


def test_steps_default_to_a_counter_per_series(save_dir):
    with yprov4ml.start_run(experiment_name="steps", provenance_save_dir=save_dir) as run:
        for _ in range(3):
            yprov4ml.log_metric("a", 1.0)
        yprov4ml.log_metric("a", 1.0, step=10)
        yprov4ml.log_metric("a", 1.0)
        yprov4ml.log_metric("b", 1.0, "validation")
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("a").steps == [0, 1, 2, 10, 11]
    assert view.metric("b", "validation").steps == [0]


def test_tensor_and_numpy_scalars_are_accepted(save_dir):
    import numpy as np
    import torch

    with yprov4ml.start_run(experiment_name="scalars", provenance_save_dir=save_dir) as run:
        yprov4ml.log_metric("t", torch.tensor(0.25))
        yprov4ml.log_metric("t", np.float32(0.5))
        yprov4ml.log_metric("t", 3)
        yprov4ml.log_metric("t", True)
    assert yprov4ml.load_run(run.run_dir).metric("t").values == [0.25, 0.5, 3.0, 1.0]


def test_strings_and_enums_name_the_same_context(save_dir):
    import enum

    class Phase(enum.Enum):
        TRAINING = 1

    with yprov4ml.start_run(experiment_name="ctx", provenance_save_dir=save_dir) as run:
        yprov4ml.log_metric("loss", 1.0, yprov4ml.Context.TRAINING)
        yprov4ml.log_metric("loss", 2.0, "training")
        yprov4ml.log_metric("loss", 3.0, "TRAINING")
        yprov4ml.log_metric("loss", 4.0, Phase.TRAINING)
        yprov4ml.log_metric("loss", 5.0, yprov4ml.Context("finetune"))
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("loss").values == [1.0, 2.0, 3.0, 4.0]
    assert view.metric("loss", "finetune").values == [5.0]


def test_logging_from_many_threads_loses_nothing(save_dir):
    threads, per_thread = 8, 5000
    run = yprov4ml.start_run(experiment_name="threads", provenance_save_dir=save_dir, save_after_n_logs=64)

    def work(t: int) -> None:
        for i in range(per_thread):
            yprov4ml.log_metric("shared", float(t * per_thread + i), step=t * per_thread + i)
            yprov4ml.log_metric(f"own{t}", float(i), step=i)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    yprov4ml.end_run()
    view = yprov4ml.load_run(run.run_dir)
    assert sorted(view.metric("shared").steps) == list(range(threads * per_thread))
    for t in range(threads):
        assert view.metric(f"own{t}").values == [float(i) for i in range(per_thread)]


def test_a_torn_final_chunk_is_dropped_and_flagged(save_dir):
    with yprov4ml.start_run(experiment_name="torn", provenance_save_dir=save_dir, save_after_n_logs=5) as run:
        for i in range(10):
            yprov4ml.log_metric("x", float(i), step=i)
    series = run.record.metrics["x", "training"]
    intact = written(series)
    with open(series.path, "ab") as fh:
        fh.write(b"YPMC" + struct.pack("<IIII", series.number, 5, 120, 0) + b"\x00" * 30)  # cut short by a crash
    torn = written(series)
    assert torn.truncated and not intact.truncated
    assert torn.values == intact.values


def test_a_zero_filled_tail_is_detected_by_the_checksum(save_dir):
    with yprov4ml.start_run(experiment_name="zeros", provenance_save_dir=save_dir, save_after_n_logs=5) as run:
        for i in range(10):
            yprov4ml.log_metric("x", float(i), step=i)
    series = run.record.metrics["x", "training"]
    data = series.path.read_bytes()
    series.path.write_bytes(data[:-20] + b"\x00" * 20)  # what a file system may leave after a power cut
    damaged = written(series)
    assert damaged.truncated and damaged.values == [float(i) for i in range(len(damaged.values))]
    assert len(damaged.values) < 10


def test_flops_are_counted_by_torch_and_logged(save_dir):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 2))
    net.train()
    running_mean = net[1].running_mean.clone()
    x, y = torch.randn(4, 8), torch.randn(4, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.repeat(3, 1), y.repeat(3, 1)),
                                         batch_size=4)
    with yprov4ml.start_run("www.example.org", "flops", save_dir) as run:
        per_batch = yprov4ml.log_flops_per_batch("flops_batch", net, (x, y), yprov4ml.Context.TRAINING, 0)
        per_epoch = yprov4ml.log_flops_per_epoch("flops_epoch", net, loader, yprov4ml.Context.TRAINING, 0)
        yprov4ml.log_flops_per_epoch("flops_dataset", net, loader.dataset, step=0)
    assert per_batch == 2 * 4 * (8 * 16 + 16 * 2)  # torch counts a multiply-add as two: 2·batch·(in·out) per Linear
    assert per_epoch == 3 * per_batch
    assert net.training and torch.equal(net[1].running_mean, running_mean)  # counting left the model as it was
    view = yprov4ml.load_run(run.run_dir)
    assert view.metric("flops_batch").values == [float(per_batch)] and view.metric("flops_batch").unit == "FLOP"
    assert view.metric("flops_dataset").values == [float(per_epoch)]
    with yprov4ml.start_run("www.example.org", "flops", save_dir):
        with pytest.raises(TypeError, match="torch.nn.Module"):
            yprov4ml.log_flops_per_batch("f", "not a model", x)


def test_the_metric_file_is_opened_once_however_often_it_is_flushed(save_dir, monkeypatch):
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    run = yprov4ml.start_run(experiment_name="opens", provenance_save_dir=save_dir, flush_interval_s=3600)
    monkeypatch.setattr(os, "open", counting_open)
    for step in range(50):
        yprov4ml.log_metric("loss", 1.0 / (step + 1), step=step)
        run._writer.drain()  # a flush per point: on a parallel file system each open is a metadata request
    monkeypatch.undo()
    yprov4ml.end_run()
    assert [p for p in opened if p.endswith(".ymetric")] == [str(run.run_dir / "metrics.rank0.ymetric")]
    assert yprov4ml.load_run(run.run_dir).metric("loss").steps == list(range(50))
