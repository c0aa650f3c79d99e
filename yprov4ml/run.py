"""One run's lifecycle on one rank: its directory, its record, and the directives that fill it."""

from __future__ import annotations

import getpass
import json
import math
import os
import shlex
import shutil
import socket
import sys
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from .context import Context, as_context
from .distributed import RankInfo, rank_zero_only
from .environment import capture_environment, capture_source
from .errors import ArtifactError, InvalidMetricError, ParamConflictError, ProvenanceDirError, RunNotActiveError
from .files import atomic_write_text, inside, sha256_of
from .identifiers import safe_name
from .journal import Journal
from .metrics import MetricSeries, MetricWriter, as_metric_value, as_step
from .parent import parent_task, register
from .record import DatasetInfo, FileEntity, ModelVersion, Param, RunInfo, RunRecord

_now = time.time
_STEP_MIN, _STEP_MAX = -(1 << 63), 1 << 63


def _as_time(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidMetricError(f"timestamp {value!r} must be Unix seconds (float) or a datetime")


def _param_value(value: Any) -> Any:
    """Parameters keep their type when JSON has one; numpy/torch scalars become numbers, objects text."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=str))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _param_value(item())
        except (ValueError, RuntimeError):
            pass
    return str(value)  # a transform, an optimizer, ...: its readable description


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _tree_size_and_sha(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, or of a directory as the hash of its files' names and hashes."""
    if path.is_file():
        return path.stat().st_size, sha256_of(path)
    import hashlib

    digest, size = hashlib.sha256(), 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        size += item.stat().st_size
        digest.update(f"{item.relative_to(path).as_posix()}\0{sha256_of(item)}\n".encode())
    return size, digest.hexdigest()


class Run:
    """A run on one rank. Created by ``yprov4ml.start_run``; usable as a context manager."""

    def __init__(self, *, user_namespace: str | None, experiment: str, save_dir: str | os.PathLike,
                 ranks: RankInfo, run_id: str, save_after_n_logs: int = 100, flush_interval_s: float = 5.0,
                 user: str | None = None, system_metrics_interval: float | None = None,
                 energy_country: str | None = None, collect_all_processes: bool = False,
                 collection_timeout_s: float | None = None):
        if not isinstance(save_after_n_logs, int) or save_after_n_logs < 1:
            raise ValueError(f"save_after_n_logs must be a positive integer, got {save_after_n_logs!r}")
        self.rank = ranks.rank
        self.run_dir = Path(save_dir).absolute() / safe_name(experiment) / run_id
        self.prov_path = self.run_dir / f"prov.rank{self.rank}.json"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.journal = Journal(self.run_dir / f"journal.rank{self.rank}.jsonl")
        except FileExistsError:
            raise ProvenanceDirError(
                f"rank {self.rank} of run {run_id} was already recorded in {self.run_dir}: "
                "use a new run_id (or leave it out to get a fresh one)"
            ) from None
        except OSError as exc:
            raise ProvenanceDirError(
                f"cannot write provenance under {save_dir!s}: {exc.strerror or exc}. "
                "Pass a writable provenance_save_dir to start_run."
            ) from exc
        self.record = RunRecord(RunInfo(
            run_id=run_id, experiment=experiment, user_namespace=user_namespace or "",
            user=user or _user_name(), run_dir=str(self.run_dir), rank=ranks.rank,
            local_rank=ranks.local_rank, world_size=ranks.world_size, launcher=ranks.launcher,
            collect_all_processes=collect_all_processes,
            host=socket.gethostname(), pid=os.getpid(),
            command_line=shlex.join([sys.executable, *sys.argv]), start_time=_now(),
        ))
        self._lock = threading.RLock()
        self._open = True
        self._series: dict[tuple[Any, Any], MetricSeries] = {}
        self._flush_every = save_after_n_logs
        self._since_flush = 0
        self._write_errors: list[BaseException] = []
        self._writer = MetricWriter(lambda: list(self.record.metrics.values()), flush_interval_s,
                                    self._on_write_error)
        info = self.record.info
        self.record.source = capture_source()
        info.parent_task = parent_task()
        self.journal.write("start", **info.__dict__, source=self.record.source)
        if info.parent_task:
            register(info.parent_task, "start", run_id, self.rank, self.run_dir, self.prov_path)
        self._collectors: dict[str, Any] = {}
        self._collector_failures: set[str] = set()
        self._energy_country = energy_country
        self._collection_timeout = collection_timeout_s
        self._timers: dict[str, float] = {}
        self._writer.start()
        self._sampler = None
        if system_metrics_interval is not None:
            from .collectors.sampler import SAMPLER_CONTEXT, BackgroundSampler

            self._sampler = BackgroundSampler(
                lambda step: self.log_system_metrics(SAMPLER_CONTEXT, step), system_metrics_interval)
            self._sampler.start()

    # ---------------------------------------------------------------- identity
    @property
    def run_id(self) -> str:
        return self.record.info.run_id

    @property
    def is_active(self) -> bool:
        return self._open

    def __repr__(self) -> str:
        state = "active" if self._open else self.record.info.status
        return f"<yprov4ml.Run {self.run_id} rank {self.rank} {state} at {self.run_dir}>"

    # ---------------------------------------------------------------- hot path
    def log_metric(self, key: str, value: float, context: Context | str | None = None,
                   step: int | None = None, timestamp: float | None = None) -> None:
        """Append one point to the (key, context) series: a memory append, no I/O."""
        try:
            series = self._series[key, context]
        except KeyError:
            series = self._open_series(key, context)
        except TypeError:
            raise InvalidMetricError(f"metric key {key!r} must be a string") from None
        if type(value) is not float:
            value = as_metric_value(value, key)
        if step is None:
            step = series.next_step
        elif type(step) is not int or not _STEP_MIN <= step < _STEP_MAX:
            step = as_step(step, key)
        series.next_step = step + 1
        series.pending.append((step, _now() if timestamp is None else _as_time(timestamp), value))
        self._since_flush += 1
        if self._since_flush >= self._flush_every:
            self._since_flush = 0
            self._writer.wake()

    def _open_series(self, key: Any, context: Any, unit: str | None = None) -> MetricSeries:
        """Slow path of log_metric: validate, create the series and its file, alias the raw context."""
        with self._lock:
            self._check_open("log_metric")
            if not isinstance(key, str) or not key:
                raise InvalidMetricError(f"metric key {key!r} must be a non-empty string")
            ctx = as_context(context).name
            series = self.record.metrics.get((key, ctx))
            if series is None:
                relpath = f"metrics/{ctx}/{safe_name(key)}.rank{self.rank}.ymetric"
                path = self.run_dir / relpath
                path.parent.mkdir(parents=True, exist_ok=True)
                series = MetricSeries(key, ctx, path, relpath, self.rank, unit)
                self.record.metrics[(key, ctx)] = series
                self.journal.write("metric", key=key, context=ctx, path=relpath, unit=unit)
            self._series[key, context] = series
            return series

    def _on_write_error(self, exc: BaseException) -> None:
        if not self._write_errors:
            warnings.warn(f"yprov4ml could not write metrics to {self.run_dir}: {exc}. "
                          "Training goes on; the points of the failed chunk are lost.", RuntimeWarning)
        self._write_errors.append(exc)

    # ---------------------------------------------------------------- directives
    def _check_open(self, directive: str) -> None:
        if not self._open:
            raise RunNotActiveError(f"{directive}: run {self.run_id} has ended; start a new run with start_run()")

    def log_metrics(self, metrics: dict[str, float], context: Context | str | None = None,
                    step: int | None = None, timestamp: float | None = None) -> None:
        """Log several metrics at the same step."""
        if not isinstance(metrics, dict):
            raise InvalidMetricError(f"log_metrics takes a dict of name → value, got {type(metrics).__name__}")
        for key, value in metrics.items():
            self.log_metric(key, value, context, step, timestamp)

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter. A key is logged once; the same value again is accepted."""
        if not isinstance(key, str) or not key:
            raise ParamConflictError(f"parameter key {key!r} must be a non-empty string")
        value = _param_value(value)
        with self._lock:
            self._check_open("log_param")
            existing = self.record.params.get(key)
            if existing is not None:
                if _same(existing.value, value):
                    return
                raise ParamConflictError(
                    f"parameter {key!r} was already logged as {existing.value!r}; a parameter is logged once "
                    f"per run, so {value!r} was not recorded. Log it under another key, or as a metric if it changes."
                )
            param = Param(key, value, _now())
            self.journal.write("param", key=key, value=value, time=param.time,
                               value_type=type(value).__name__)
            self.record.params[key] = param

    def log_params(self, params: dict[str, Any]) -> None:
        """Record several parameters; all are checked before any is recorded."""
        if not isinstance(params, dict):
            raise ParamConflictError(f"log_params takes a dict of name → value, got {type(params).__name__}")
        with self._lock:
            for key, value in params.items():
                old = self.record.params.get(key) if isinstance(key, str) else None
                if old is not None and not _same(old.value, _param_value(value)):
                    raise ParamConflictError(
                        f"parameter {key!r} was already logged as {old.value!r}; none of these parameters were "
                        "recorded. A parameter is logged once per run."
                    )
            for key, value in params.items():
                self.log_param(key, value)

    def log_artifact(self, artifact_path: str | os.PathLike, context: Context | str | None = None,
                     step: int | None = None, timestamp: float | None = None, *, name: str | None = None,
                     is_input: bool = False, copy: bool = True) -> FileEntity:
        """Record a file or directory: copied under ``artifacts/`` (or referenced with ``copy=False``)."""
        self._check_open("log_artifact")
        source = Path(artifact_path)
        if not source.exists():
            raise ArtifactError(f"artifact {os.fspath(artifact_path)!r} does not exist: write it before logging it")
        when = _now() if timestamp is None else _as_time(timestamp)
        ctx = as_context(context).name if context is not None else None
        name = name if name is not None else source.name
        if copy:
            with self._lock:
                target = self._free_path(inside(self.run_dir / "artifacts" / f"rank{self.rank}", name))
                target.parent.mkdir(parents=True, exist_ok=True)
                placeholder = target.with_name(f".{target.name}.partial")
                if source.is_dir():
                    shutil.copytree(source, placeholder)
                else:
                    shutil.copyfile(source, placeholder)
                placeholder.replace(target)
            stored = target.relative_to(self.run_dir).as_posix()
        else:
            target = source.resolve()
            stored = str(target)
        size, digest = _tree_size_and_sha(target)
        item = FileEntity(name=name, path=stored, size=size, sha256=digest, time=when, context=ctx,
                          step=None if step is None else as_step(step, name), is_input=is_input,
                          original_path=str(source.resolve()))
        self._add_file("artifact", item, self.record.artifacts)
        return item

    def _free_path(self, target: Path) -> Path:
        """``target``, or ``stem-2.ext``, ``stem-3.ext``... when a file of that name was logged already."""
        candidate, n = target, 1
        while candidate.exists():
            n += 1
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        return candidate

    def _add_file(self, kind: str, item: FileEntity, into: list) -> None:
        with self._lock:
            self._check_open(f"log_{kind}")
            if item.context:
                self.record.touch_context(item.context, item.time)
            self.journal.write(kind, **item.__dict__)
            into.append(item)

    def save_model_version(self, model: Any, model_name: str | None = None,
                           context: Context | str | None = None, step: int | None = None,
                           timestamp: float | None = None, *, final: bool = False) -> ModelVersion:
        """Save a checkpoint of ``model``; versions of one name form a derivation chain."""
        from .models import describe_model, save_model

        self._check_open("save_model_version")
        if isinstance(model, str) and model_name is not None and not isinstance(model_name, str):
            model, model_name = model_name, model  # the paper shows both argument orders
        model_name = model_name or type(model).__name__
        ctx = as_context(context).name if context is not None else None
        with self._lock:
            version = 1 + sum(1 for m in self.record.models if m.model_name == model_name)
            relpath = f"models/rank{self.rank}/{safe_name(model_name)}.v{version}.pt"
            target = self.run_dir / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            save_model(model, target)
            item = ModelVersion(
                name=f"{model_name} v{version}", path=relpath, size=target.stat().st_size,
                sha256=sha256_of(target), time=_now() if timestamp is None else _as_time(timestamp),
                context=ctx, step=None if step is None else as_step(step, model_name),
                attributes=describe_model(model), model_name=model_name, version=version, final=final,
            )
            self._add_file("model", item, self.record.models)
        return item

    def log_model(self, model: Any, model_label: str | None = None, context: Context | str | None = None,
                  step: int | None = None) -> ModelVersion:
        """Save the final model (either argument order is accepted)."""
        if isinstance(model, str) and not isinstance(model_label, str):
            model, model_label = model_label, model
        return self.save_model_version(model, model_label, context, step, final=True)

    def log_dataset(self, dataset: Any, label: str | None = None, context: Context | str | None = None) -> DatasetInfo:
        """Record a dataset or data loader: samples, batch size, batches, sample shape, transform."""
        from .datasets import describe_dataset

        if isinstance(dataset, str) and not isinstance(label, str):
            dataset, label = label, dataset
        self._check_open("log_dataset")
        label = label or type(dataset).__name__
        info = DatasetInfo(label=label, time=_now(), context=as_context(context).name if context else None,
                           attributes=describe_dataset(dataset))
        with self._lock:
            self._check_open("log_dataset")
            if info.context:
                self.record.touch_context(info.context, info.time)
            self.journal.write("dataset", **info.__dict__)
            self.record.datasets.append(info)
        return info

    def log_current_execution_time(self, label: str, context: Context | str | None = None,
                                   step: int | None = None) -> float:
        """Log the seconds elapsed since the run started as metric ``label`` (unit: s)."""
        elapsed = _now() - self.record.info.start_time
        self._log_figures([(label, elapsed, "s")], context, step)
        return elapsed

    # ---------------------------------------------------------------- collectors
    def _collector(self, name: str) -> Any:
        """The system / gpu / energy collector, created on first use (None when unavailable)."""
        if name not in self._collectors:
            if name == "system":
                from .collectors.system import SystemCollector

                self._collectors[name] = SystemCollector(self.run_dir)
            elif name == "gpu":
                from .collectors.gpu import GpuCollector

                self._collectors[name] = GpuCollector.create()
            else:
                from .collectors.energy import EnergyTracker

                self._collectors[name] = EnergyTracker(self._energy_country)
        return self._collectors[name]

    def _log_figures(self, figures: list[tuple[str, float, str]], context: Any, step: int | None) -> None:
        for name, value, unit in figures:
            if (name, context) not in self._series:
                self._open_series(name, context, unit)
            self.log_metric(name, value, context, step)

    def _collector_failed(self, what: str, exc: Exception) -> None:
        if what not in self._collector_failures:  # once per collector: training goes on
            self._collector_failures.add(what)
            warnings.warn(f"yprov4ml: {what} failed and is skipped: {type(exc).__name__}: {exc}", RuntimeWarning)

    def log_system_metrics(self, context: Context | str | None = None, step: int | None = None) -> None:
        """Log CPU, memory and disk load, and every visible GPU's figures, as metric series."""
        self._check_open("log_system_metrics")
        try:
            figures = self._collector("system").sample()
            gpu = self._collector("gpu")
            if gpu is not None:
                figures += gpu.sample()
        except Exception as exc:
            self._collector_failed("log_system_metrics", exc)
            return
        self._log_figures(figures, context, step)

    def log_carbon_metrics(self, context: Context | str | None = None, step: int | None = None) -> None:
        """Log energy (kWh: total, CPU, GPU, RAM), emissions (kg CO2eq) and power (W) from codecarbon.

        Only local rank 0 of each node measures: codecarbon measures the whole
        machine, so several ranks per node would count it several times.
        """
        self._check_open("log_carbon_metrics")
        if self.record.info.local_rank != 0:
            return
        try:
            figures = self._collector("energy").measure()
        except Exception as exc:
            self._collector_failed("log_carbon_metrics", exc)
            return
        self._log_figures(figures, context, step)

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

    def _stop_collectors(self) -> None:
        energy = self._collectors.get("energy")
        if energy is not None:
            self.record.resource_usage.update(energy.totals())
            energy.stop()
        elif self.record.info.local_rank != 0:
            self.record.resource_usage["energy_measured_by"] = "local rank 0 of this node"

    # ---------------------------------------------------------------- end
    def end(self, create_graph: bool = False, create_svg: bool = False, *, status: str = "FINISHED",
            error: str | None = None) -> Path:
        """Flush everything, write the PROV-JSON (atomically) and, if asked, its DOT/SVG picture."""
        self._check_open("end_run")
        if self._sampler is not None:  # before closing, so its last sample is not refused
            self._sampler.stop()
        with self._lock:
            self._check_open("end_run")
            self._open = False
            self._series = {}
        self._stop_collectors()
        self._writer.close()
        info = self.record.info
        info.end_time, info.status, info.error = _now(), status, error
        if self._write_errors:
            info.error = (info.error + "; " if info.error else "") + \
                f"{len(self._write_errors)} metric chunk(s) could not be written: {self._write_errors[0]}"
        for series in self.record.metrics.values():
            if series.count:
                self.record.touch_context(series.context, series.first_time)
                self.record.touch_context(series.context, series.last_time)
                series.sha256 = sha256_of(series.path)
        try:
            self.record.environment = capture_environment()
            gpu = self._collectors.get("gpu")
            if gpu is not None:
                self.record.environment["accelerators"] += gpu.describe()
        except Exception as exc:  # an odd installation must not lose the record
            self.record.environment = {"capture_error": f"{type(exc).__name__}: {exc}"}
        path = self.write_prov(create_graph=create_graph, create_svg=create_svg)
        self.journal.write("end", status=info.status, error=info.error, end_time=info.end_time)
        self.journal.close()
        if info.parent_task:
            register(info.parent_task, "end", info.run_id, self.rank, self.run_dir, path)
        if info.collect_all_processes and info.world_size > 1:
            from .collection import KILLED_WAIT_S, collection_timeout, wait_for_collection

            timeout = collection_timeout(self._collection_timeout)
            if status == "KILLED":  # a killed job has seconds before SIGKILL: do not wait long for the others
                timeout = min(timeout, KILLED_WAIT_S)
            self.write_collection(timeout)  # rank 0 only
            if self.rank != 0 and status != "KILLED":  # end together with rank 0 (see wait_for_collection)
                wait_for_collection(self.run_dir, timeout + max(5.0, timeout / 4))
        return path

    @rank_zero_only
    def write_collection(self, timeout_s: float) -> Path:
        """Rank 0: wait for the other ranks' documents (up to ``timeout_s``) and write ``collection.json``."""
        from .collection import write_collection

        info = self.record.info
        return write_collection(self.run_dir, info.run_id, info.experiment, info.user_namespace,
                                info.world_size, timeout_s)

    def write_prov(self, create_graph: bool = False, create_svg: bool = False) -> Path:
        """Write this rank's PROV-JSON from the record, and its picture if asked."""
        from .provdoc import build_document, to_json

        doc = build_document(self.record)
        atomic_write_text(self.prov_path, to_json(doc))
        if create_graph or create_svg:
            from .render import write_dot, write_svg

            dot = write_dot(doc, self.run_dir / f"graph.rank{self.rank}.dot")
            if create_svg:
                write_svg(dot, dot.with_suffix(".svg"))
        return self.prov_path

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._open:
            return
        from . import api

        api.finish(self, *outcome(exc))


def outcome(exc: BaseException | None) -> tuple[str, str | None]:
    """The status (and error text) a run ends with, given the exception that ended it."""
    if exc is None:
        return "FINISHED", None
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "FINISHED", None
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED", "KeyboardInterrupt"
    return "FAILED", f"{type(exc).__name__}: {exc}"


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
