"""The metric directives of a run: the hot path, the collectors, and the timers."""

from __future__ import annotations

import logging  # noqa: F401  (before _IMPORTING's at-fork handler: see there)
import os
import threading
import time
import warnings
from typing import Any

from .context import Context, as_context
from .errors import InvalidMetricError, RunNotActiveError
from .storage.names import UniqueNames
from .storage.series import MetricSeries
from .values import (STEP_MAX, STEP_MIN, as_metric_value, as_sequence, as_step, as_time, checked_source,
                     is_sequence)

_now = time.time
_ABSENT = object()
# Held while the preparing thread imports: a fork waits for it, so that no child starts life with a module
# half imported by a thread it does not have. Registered after logging's at-fork handler (which takes the
# lock those imports need), it runs first: fork calls "before" handlers in reverse order of registration.
_IMPORTING = threading.Lock()
os.register_at_fork(before=_IMPORTING.acquire, after_in_parent=_IMPORTING.release,
                    after_in_child=_IMPORTING.release)
_KIND_TEXT = {"scalar": "numbers", "vector": "vectors", "indices": "sample indices"}


class MetricDirectives:
    """log_metric and friends; mixed into ``Run``, whose attributes they use."""

    # ---------------------------------------------------------------- hot path
    def log_metric(self, key: str, value: float, context: Context | str | None = None,
                   step: int | None = None, timestamp: float | None = None) -> None:
        """Append one point to the (key, context) series: a memory append, no I/O."""
        try:
            series = self._series[key, context]  # scalar series only: vectors take the slow path
        except KeyError:
            # A rejected first point must leave nothing behind: check it all before the series exists.
            if isinstance(key, str):
                if is_sequence(value):
                    return self._log_sequence(key, value, context, step, timestamp)
                value = as_metric_value(value, key)
                if step is not None:
                    step = as_step(step, key)
                if timestamp is not None and not isinstance(timestamp, str):
                    timestamp = as_time(timestamp)
            series = self._open_series(key, context)
        except TypeError:
            raise InvalidMetricError(f"metric key {key!r} must be a string") from None
        if type(value) is not float:
            if is_sequence(value):
                return self._log_sequence(key, value, context, step, timestamp)
            value = as_metric_value(value, key)
        if step is None:
            step = series.next_step
        elif type(step) is not int or not STEP_MIN <= step < STEP_MAX:
            step = as_step(step, key)
        series.next_step = step + 1
        series.pending.append((step, _now() if timestamp is None else self._point_time(series, timestamp), value))
        self._since_flush += 1
        if self._since_flush >= self._flush_every:
            self._since_flush = 0
            self._writer.wake()

    def _log_sequence(self, key: Any, value: Any, context: Any, step: Any, timestamp: Any) -> None:
        """A vector-valued point, or the sample indices of a step (slow path: a list, an array, a tensor)."""
        if not isinstance(key, str) or not key:
            raise InvalidMetricError(f"metric key {key!r} must be a non-empty string")
        kind, elements, shape = as_sequence(value, key)
        step = None if step is None else as_step(step, key)
        when = _now() if timestamp is None or isinstance(timestamp, str) else as_time(timestamp)
        series = self._open_series(key, context, kind=kind, shape=shape)
        if isinstance(timestamp, str):  # upstream's fifth argument: the source
            self.note_metric_source(key, context, timestamp)
        self._queue_point(series, step, when, elements)
        self._since_flush += 1
        if self._since_flush >= self._flush_every:
            self._since_flush = 0
            self._writer.wake()

    def log_sample_indices(self, indices: Any, context: Context | str | None = None, step: int | None = None,
                           label: str = "indices") -> None:
        """Record which samples (dataset indices) a step consumed: sample-level lineage, stored compactly."""
        if not isinstance(label, str) or not label:
            raise InvalidMetricError(f"sample indices label {label!r} must be a non-empty string")
        kind, elements, _ = as_sequence(list(indices) if not hasattr(indices, "tolist") else indices, "indices")
        if kind != "indices" and elements:
            raise InvalidMetricError(f"sample indices of {label!r} must be integers (dataset indices)")
        step = None if step is None else as_step(step, label)
        series = self._open_series(label, context, kind="indices")
        self._queue_point(series, step, _now(), elements)

    @staticmethod
    def _queue_point(series: MetricSeries, step: int | None, when: float, value: Any) -> None:
        """A point of a slow-path series (vectors, sample indices): at ``step``, else the next one."""
        point_step = series.next_step if step is None else step
        series.next_step = point_step + 1
        series.pending.append((point_step, when, value))

    def _point_time(self, series: MetricSeries, timestamp: Any) -> float:
        """A given timestamp; a string in its place is upstream's fifth argument, the point's ``source``."""
        if isinstance(timestamp, str):
            self.note_metric_source(series.key, series.context, timestamp)
            return _now()
        return as_time(timestamp)

    def note_metric_source(self, key: str, context: Any, source: Any) -> None:
        """Record where the points of a series come from (upstream's ``source``), once per distinct source."""
        checked_source(key, source)
        name = as_context(context).name
        self._check_open("log_metric")
        with self._lock:
            known = self.record.metric_sources.setdefault((key, name), [])
            if source not in known:
                known.append(source)
                self.journal.write("metric_source", key=key, context=name, source=source)

    def _open_series(self, key: Any, context: Any, unit: str | None = None, kind: str = "scalar",
                     shape: list[int] | None = None) -> MetricSeries:
        """Slow path of log_metric: validate, create the series (numbered in the rank's metric file), alias
        the raw context. A key that holds points of another kind (numbers, vectors, indices) is refused."""
        if not isinstance(key, str) or not key:
            raise InvalidMetricError(f"metric key {key!r} must be a non-empty string")
        ctx = as_context(context).name
        self._check_open("log_metric")  # a forked child stops here, before any lock a parent's thread may hold
        with self._lock:
            self._check_open("log_metric")
            series = self.record.metrics.get((key, ctx))
            if series is None:
                name = self._file_names.setdefault(ctx, UniqueNames()).name(key)
                series = MetricSeries(key, ctx, len(self.record.metrics), name, self._writer.file.path,
                                      self._metric_relpath, unit, kind, shape)
                self.journal.write("metric", key=key, context=ctx, number=series.number, name=name, kind=kind,
                                   unit=unit, shape=shape)
                self.record.metrics[(key, ctx)] = series
            elif series.kind != kind:
                raise InvalidMetricError(f"metric {key!r} ({ctx}) holds {_KIND_TEXT[series.kind]}; this point is "
                                         f"{_KIND_TEXT[kind][:-1]}: log it under another key")
            if kind == "scalar":
                self._series[key, context] = series
            return series

    def log_metrics(self, metrics: dict[str, float], context: Context | str | None = None,
                    step: int | None = None, timestamp: float | None = None) -> None:
        """Log several metrics at the same step; every value is checked before any is logged."""
        if not isinstance(metrics, dict):
            raise InvalidMetricError(f"log_metrics takes a dict of name → value, got {type(metrics).__name__}")
        checked = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise InvalidMetricError(f"metric key {key!r} must be a non-empty string; nothing was logged")
            checked[key] = as_metric_value(value, key)
        if step is not None:
            as_step(step, next(iter(checked), "log_metrics"))
        for key, value in checked.items():
            self.log_metric(key, value, context, step, timestamp)

    # ---------------------------------------------------------------- collectors
    def _start_collectors(self) -> None:
        from .collectors.system import system_collector

        options = self.options
        self._collector_failures: set[str] = set()
        self._timers: dict[str, float] = {}
        # Created now so that the first CPU figure covers the time since start_run, not 0.0.
        self._collectors: dict[str, Any] = {"system": system_collector(self.run_dir)}
        self._collectors_lock = threading.Lock()  # not the run's lock: creating NVML's collector takes a while
        self._sampler = None
        if options.system_metrics_interval is not None:
            from .collectors.sampler import SAMPLER_CONTEXT, BackgroundSampler

            self._sampler = BackgroundSampler(
                lambda step: self.log_system_metrics(SAMPLER_CONTEXT, step), options.system_metrics_interval)
            self._sampler.start()
        if options.track_energy and self.record.info.local_rank == 0:
            self._collector("energy").start()  # in the background: the first log_carbon_metrics has figures
        threading.Thread(target=self._prepare, name="yprov4ml-prepare", daemon=True).start()

    def _prepare(self) -> None:
        """In the background at start_run: what end_run and the first collector calls would otherwise pay for
        on the training thread — the PROV library's import (tens of ms) and NVML's start (local rank 0)."""
        with _IMPORTING:
            try:
                from .prov import build, document  # noqa: F401
            except ImportError:  # end_run imports them again and says what is missing
                pass
            if self.record.info.local_rank == 0:
                self._collector("gpu")  # imports pynvml

    def _collector(self, name: str) -> Any:
        """The gpu / energy collector, created once, on first use (None when unavailable)."""
        found = self._collectors.get(name, _ABSENT)
        if found is not _ABSENT:
            return found
        with self._collectors_lock:  # the preparing thread and the training thread may both ask first
            if name not in self._collectors:
                if name == "gpu":
                    from .collectors.gpu import GpuCollector

                    self._collectors[name] = GpuCollector.create()
                else:
                    from .collectors.energy import EnergyTracker

                    self._collectors[name] = EnergyTracker(self.options.energy_country)
            return self._collectors[name]

    def _log_figures(self, figures: list[tuple[str, float, str]], context: Any, step: int | None) -> None:
        """One sample of a collector: its figures share one time, and count as one log towards ``save_after_n_logs``.

        Counted point by point, a collector called every step would wake the writer for its own few
        points every few calls, and its cost would double; counted not at all, a collector called in a
        tight loop would buffer without bound until the timed flush.
        """
        when = _now()
        checked_step = None if step is None else as_step(step, "a collector's step")
        for name, value, unit in figures:
            series = self._series.get((name, context)) or self._open_series(name, context, unit)
            point_step = series.next_step if checked_step is None else checked_step
            series.next_step = point_step + 1
            series.pending.append((point_step, when, value if type(value) is float else as_metric_value(value, name)))
        self._since_flush += 1
        if self._since_flush >= self._flush_every:
            self._since_flush = 0
            self._writer.wake()

    def _collector_failed(self, what: str, exc: Exception) -> None:
        if what not in self._collector_failures:  # once per collector: training goes on
            self._collector_failures.add(what)
            warnings.warn(f"yprov4ml: {what} failed and is skipped: {type(exc).__name__}: {exc}", RuntimeWarning)

    def log_system_metrics(self, context: Context | str | None = None, step: int | None = None) -> None:
        """Log CPU, memory and disk load, and every visible GPU's figures, as metric series."""
        self._check_open("log_system_metrics")
        try:
            figures = self._collectors["system"].sample()
            # GPUs are the node's: local rank 0 samples every GPU NVML sees (NVML ignores CUDA_VISIBLE_DEVICES)
            gpu = self._collector("gpu") if self.record.info.local_rank == 0 else None
            if gpu is not None:
                figures += gpu.sample()
        except Exception as exc:
            self._collector_failed("log_system_metrics", exc)
            return
        self._log_figures(figures, context, step)

    def log_carbon_metrics(self, context: Context | str | None = None, step: int | None = None) -> None:
        """Log energy (kWh: total, CPU, GPU, RAM), emissions (kg CO2eq) and power (W) from codecarbon.

        Only local rank 0 of each node measures: codecarbon measures the whole
        machine, so several ranks per node would count it several times. Never
        waits: while codecarbon starts (about 1.5 s, in the background) each
        call's figures are logged, at its step, as soon as it is up.
        """
        self._check_open("log_carbon_metrics")
        if self.options.energy_disabled:
            self._collector_failed("log_carbon_metrics", RuntimeError(
                "energy tracking is off for this run (start_run(disable_codecarbon=True)): nothing is measured"))
            return
        if self.record.info.local_rank != 0:
            return
        energy = self._collector("energy")
        if not energy.ready:
            checked = None if step is None else as_step(step, "log_carbon_metrics")
            if energy.when_ready(lambda: self._log_energy(energy, context, checked, deferred=True)):
                self.add_closer(energy.settle)  # a short run: its end waits for the answers, not its training
            else:
                from .collectors.energy import MAX_WAITING

                self._collector_failed("log_carbon_metrics while codecarbon starts", RuntimeError(
                    f"codecarbon is still not up after {MAX_WAITING} calls: these calls record nothing until "
                    "it is; start_run(track_energy=True) starts it with the run"))
            return
        self._log_energy(energy, context, step)

    def _log_energy(self, energy: Any, context: Any, step: int | None, deferred: bool = False) -> None:
        try:
            figures = energy.measure()
            if not figures and energy.unavailable:
                raise RuntimeError(energy.unavailable)  # said once, not silent
            self._log_figures(figures, context, step)
        except RunNotActiveError:
            if not deferred:
                raise  # (deferred: the run ended before codecarbon was up; end_run took its totals)
        except Exception as exc:
            self._collector_failed("log_carbon_metrics", exc)

    def log_current_execution_time(self, label: str, context: Context | str | None = None,
                                   step: int | None = None) -> float:
        """Log the seconds elapsed since the run started as metric ``label`` (unit: s)."""
        elapsed = _now() - self.record.info.start_time
        self._log_figures([(label, elapsed, "s")], context, step)
        return elapsed

    def log_execution_start_time(self, label: str = "execution") -> None:
        """Start a timer; ``log_execution_end_time(label)`` logs its duration."""
        self._timers[label] = time.perf_counter()

    def log_execution_end_time(self, label: str = "execution", context: Context | str | None = None,
                               step: int | None = None) -> float:
        """Log the seconds since ``log_execution_start_time(label)`` as metric ``<label>_time_s``."""
        started = self._timers.pop(label, None)
        if started is None:
            raise RunNotActiveError(f"no timer {label!r} is running: call log_execution_start_time({label!r}) first")
        elapsed = time.perf_counter() - started
        self._log_figures([(f"{label}_time_s", elapsed, "s")], context, step)
        return elapsed

    def _stop_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()

    def _stop_collectors(self) -> None:
        self._collectors["system"].close()
        energy = self._collectors.get("energy")
        if energy is not None:
            self.record.resource_usage.update(energy.totals())
            energy.stop()
        elif self.record.info.local_rank != 0:
            self.record.resource_usage["energy_measured_by"] = "local rank 0 of this node"

    def log_flops_per_batch(self, label: str, model: Any, batch: Any, context: Context | str | None = None,
                            step: int | None = None) -> int:
        """Log the FLOPs of one forward pass of ``model`` on ``batch`` as metric ``label`` (torch's count)."""
        from .capture.flops import forward_flops

        self._check_open("log_flops_per_batch")
        return self._log_flops(label, forward_flops(model, batch), context, step)

    def log_flops_per_epoch(self, label: str, model: Any, dataset: Any, context: Context | str | None = None,
                            step: int | None = None) -> int:
        """Log the FLOPs of one forward pass over ``dataset`` (a DataLoader or a Dataset) as metric ``label``."""
        from .capture.flops import epoch_flops

        self._check_open("log_flops_per_epoch")
        return self._log_flops(label, epoch_flops(model, dataset), context, step)

    def register_final_metric(self, metric_name: str, initial_value: float, fold_operation: Any) -> None:
        """At end_run, fold every point of ``metric_name`` (all contexts, in time order) into ``initial_value``
        with ``fold_operation`` and record the result as parameter ``metric_name`` (upstream's final metrics)."""
        from .capture.final_metrics import checked_fold

        if not isinstance(metric_name, str) or not metric_name:
            raise InvalidMetricError(f"final metric name {metric_name!r} must be a non-empty string")
        initial = as_metric_value(initial_value, metric_name)
        self._check_open("register_final_metric")
        with self._lock:
            self._check_open("register_final_metric")
            self._final_metrics[metric_name] = (initial, checked_fold(fold_operation))

    def _fold_final_metrics(self, written: dict[int, Any]) -> None:
        """The registered final metrics, as parameters (the run is closed: written straight into the record)."""
        from .capture.final_metrics import fold_series
        from .record import Param

        for name, (initial, operation) in self._final_metrics.items():
            value, count = fold_series(initial, operation, [written[s.number] for (k, _), s in
                                                            self.record.metrics.items()
                                                            if k == name and s.kind == "scalar" and s.number in written])
            key = name if name not in self.record.params else f"final_{name}"
            param = Param(key, value, _now(), source=f"fold {operation.value} of {count} point(s) of metric "
                                                      f"{name!r} from {initial!r}")
            self.journal.write("param", key=key, value=value, time=param.time, value_type="float", redacted=[],
                               context=None, source=param.source, is_input=False)
            self.record.params[key] = param

    def _written_series(self) -> dict[int, Any]:
        """The series of this rank's metric file as written (for the final metrics and the export copies)."""
        from .storage.metric_file import read_metrics_file

        path = self._writer.file.path
        try:
            return read_metrics_file(path).series if path.is_file() else {}
        except (OSError, ValueError) as exc:  # a damaged file: the rest of the record is still written
            self._collector_failed("reading the metric file back", exc)
            return {}

    def _export_series(self, written: dict[int, Any]) -> None:
        """Each series again as CSV / netCDF / Zarr / Parquet (start_run(metrics_file_type=...)); a failure
        is said and the run's record, whose primary file is whole, is kept."""
        from .storage.export_formats import export_stem, write_series

        for (key, context), series in self.record.metrics.items():
            data = written.get(series.number)
            if data is None or series.kind != "scalar":
                continue
            try:
                path = write_series(data, export_stem(self.run_dir, context, series.name, self.rank),
                                    *self.options.metrics_export)
            except Exception as exc:
                file_type = self.options.metrics_export[0]
                warnings.warn(f"yprov4ml: metric {key!r} ({context}) was not written as {file_type}: "
                              f"{type(exc).__name__}: {exc}; run `yprov4ml export {self.final_dir} --format "
                              f"{file_type}` later", RuntimeWarning)
                continue
            self.record.metric_exports[key, context] = path.relative_to(self.run_dir).as_posix()

    def _log_flops(self, label: str, flops: int, context: Any, step: int | None) -> int:
        self._log_figures([(label, float(flops), "FLOP")], context, step)
        return flops
