"""One run's lifecycle on one rank: its directory, its record, and ending it.

The directives that fill the record live in two mixins: ``run_metrics``
(the hot path, collectors, timers) and ``run_files`` (parameters, artifacts,
models, datasets). This module opens the run and finishes it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shlex
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from . import state
from .capture.environment import capture_environment, capture_source, git_state
from .capture.shared import read_shared, shared_packages, shared_source
from .capture.reproducibility import KILLED_WAIT_S as KILLED_SNAPSHOT_WAIT_S
from .capture.reproducibility import SNAPSHOT_WAIT_S, ReproducibilityCapture
from .capture.secrets import Redactions
from .distributed import sentinel
from .distributed.attempts import RunIdentity
from .distributed.polling import backing_off
from .distributed.ranks import RankInfo, abort_mpi_world_after_failure
from .errors import ForkedProcessError, ProvenanceDirError, RunNotActiveError
from .parent import parent_task, register
from .record import RunInfo, RunRecord
from .run_files import FileDirectives
from .run_metrics import MetricDirectives
from .run_options import RunOptions
from .safety import after_if_uncaught, outcome
from .storage.background_files import BackgroundFiles
from .storage.files import atomic_write_bytes, sha256_of
from .storage.journal import Journal
from .storage.layout import COLLECTION_FILE, journal_file, metric_file, place_in_run, prov_file
from .storage.staging import move_into
from .storage.names import safe_part
from .storage.writer import MetricFileWriter, MetricWriter

_now = time.time
SHARED_CAPTURE_WAIT_S = 10.0  # how long a rank's end_run waits for rank 0's package list before listing its own
FILES_WAIT_S = {"FINISHED": 3600.0, "FAILED": 600.0, "KILLED": 2.0}  # end_run's wait for copies and digests


class Run(MetricDirectives, FileDirectives):
    """A run on one rank. Created by ``yprov4ml.start_run``; usable as a context manager."""

    unify_experiments = False  # start_run(unify_experiments=True): api.end_run rewrites the experiment's document

    def __init__(self, *, user_namespace: str | None, experiment: str, save_dir: str | os.PathLike,
                 ranks: RankInfo, identity: RunIdentity, user: str | None = None, options: RunOptions = RunOptions()):
        run_id = identity.run_id
        self.options = options
        self._final_metrics: dict[str, tuple[float, Any]] = {}  # register_final_metric: name → (initial, fold)
        mlflow_uri = mirror_uri(options.mlflow_tracking_uri)
        redactions = Redactions(options.keep_in_clear)
        command_line = shlex.join(redactions.argv([sys.executable, *sys.argv]))
        self.rank = ranks.rank
        self.final_dir = Path(save_dir).absolute() / safe_part(experiment) / run_id  # the shared run directory
        # where this rank writes until its end: the shared directory, or a node-local one of its own (ranks of a
        # node share the stage directory; each moves its own files at its end)
        self.run_dir = options.stage_dir / safe_part(experiment) / run_id / f"rank{ranks.rank}" \
            if options.stage_dir else self.final_dir
        self.prov_path = prov_file(self.run_dir, self.rank)
        # In a job whose ranks all record, rank 0 alone lists the packages and asks git (capture.shared)
        shares_capture = ranks.world_size > 1 and options.collect_all_processes
        self._takes_shared_capture = shares_capture and ranks.rank != 0
        # before the journal exists: a kill in between leaves no empty journal
        source = capture_source(git=not self._takes_shared_capture)
        self.record = RunRecord(RunInfo(
            run_id=run_id, experiment=experiment, user_namespace=user_namespace or "",
            user=user or _user_name(), run_dir=str(self.final_dir), rank=ranks.rank,
            local_rank=ranks.local_rank, world_size=ranks.world_size, launcher=ranks.launcher,
            collect_all_processes=options.collect_all_processes,
            host=socket.gethostname(), node=ranks.node or socket.gethostname(), node_index=ranks.node_index,
            pid=os.getpid(),
            command_line=command_line, working_dir=os.getcwd(), start_time=_now(), redacted=redactions.items,
            attempt=identity.attempt, previous_attempt=identity.previous_attempt,
        ))
        self._lock = threading.RLock()
        self._closers: list[Any] = []
        self._files = BackgroundFiles(self._file_failed)  # copies and digests, off the training thread
        self._reserved: set[Path] = set()  # artifact names taken by copies still under way
        self._open = True
        self._ended = threading.Event()
        self._series: dict[tuple[Any, Any], Any] = {}
        self._file_names: dict[str, Any] = {}  # context → UniqueNames of its series
        self._flush_every = options.save_after_n_logs
        self._since_flush = 0
        self._write_errors: list[BaseException] = []
        metrics_path = metric_file(self.run_dir, self.rank)
        self._metric_relpath = place_in_run(metrics_path)
        self._writer = MetricWriter(MetricFileWriter(metrics_path, self.rank), lambda: list(self.record.metrics.values()),
                                    options.flush_interval_s, self._on_write_error)
        info = self.record.info
        self.record.source = source
        info.parent_task = parent_task()
        try:
            self.prov_path.parent.mkdir(parents=True, exist_ok=True)  # the run directory, or its ranks/ part
            self.final_dir.mkdir(parents=True, exist_ok=True)
            if prov_file(self.final_dir, self.rank).exists():  # staged: the journal's O_EXCL cannot see it
                raise FileExistsError(prov_file(self.final_dir, self.rank))
            self.journal = Journal(journal_file(self.run_dir, self.rank))
        except FileExistsError:
            raise ProvenanceDirError(
                f"rank {self.rank} of run {run_id} was already recorded in {self.final_dir}: "
                "use a new run_id (or leave it out to get a fresh one); to record a retry of that run, "
                "set YPROV4ML_RESTART_COUNT to how many times it was restarted (torchrun and Slurm say it themselves)"
            ) from None
        except OSError as exc:
            raise ProvenanceDirError(
                f"cannot write provenance under {exc.filename or save_dir!s}: {exc.strerror or exc}. "
                "Pass a writable provenance_save_dir (and stage_dir) to start_run."
            ) from exc
        self.journal.write("start", **info.__dict__, source=self.record.source,
                           stage_dir=str(self.run_dir) if options.stage_dir else None)
        self._reproducibility = ReproducibilityCapture(self.run_dir, self.rank, self.journal,
                                                       [Path(save_dir).absolute(), self.run_dir],
                                                       options.keep_in_clear,
                                                       publish_to=self.final_dir if shares_capture and
                                                       self.rank == 0 else None,
                                                       source=source, lists_packages=not self._takes_shared_capture)
        self._reproducibility.start()
        if info.world_size > 1 and info.collect_all_processes:  # who dies first, when nothing inside can say
            sentinel.watch(run_id, info.node, self.rank, self.final_dir)
        if info.parent_task:
            register(info.parent_task, "start", run_id, self.rank, self.final_dir, prov_file(self.final_dir, self.rank))
        self._start_collectors()
        self._writer.start()
        self._mirror = None
        if mlflow_uri:
            from .integrations.mlflow_mirror import MlflowMirror

            self._mirror = MlflowMirror(self, mlflow_uri, interval_s=options.flush_interval_s)
            self._mirror.start()

    @property
    def collection_timeout_s(self) -> float | None:
        return self.options.collection_timeout_s

    # ---------------------------------------------------------------- identity
    @property
    def run_id(self) -> str:
        return self.record.info.run_id

    @property
    def pid(self) -> int:
        """The process that records this run (a forked child is another)."""
        return self.record.info.pid

    @property
    def is_active(self) -> bool:
        return self._open

    def __repr__(self) -> str:
        state_text = "active" if self._open else self.record.info.status
        return f"<yprov4ml.Run {self.run_id} rank {self.rank} {state_text} at {self.run_dir}>"

    def _check_open(self, directive: str) -> None:
        if self.pid != os.getpid():
            raise ForkedProcessError(
                f"{directive} was called in process {os.getpid()}, forked from the process of run {self.run_id} "
                f"(pid {self.pid}) — a DataLoader or multiprocessing worker? Only the process that started the "
                "run records it, so nothing of this call was recorded: return the value to the main process "
                "and log it there."
            )
        if not self._open:
            raise RunNotActiveError(f"{directive}: run {self.run_id} has ended; start a new run with start_run()")

    def detach_after_fork(self) -> None:
        """In a forked child: drop the hot-path cache so that every directive reaches ``_check_open``."""
        self._series = {}

    def wait_ended(self, timeout_s: float) -> bool:
        """Wait until the run's document is written (by whichever thread ends it)."""
        return self._ended.wait(timeout_s)

    def _file_failed(self, what: str, exc: BaseException) -> None:
        self._collector_failed(f"copying or hashing {what}", exc)

    def _on_write_error(self, exc: BaseException) -> None:
        if not self._write_errors:
            warnings.warn(f"yprov4ml could not write metrics to {self.run_dir}: {exc}. "
                          "Training goes on; the points are kept in memory and written once space is back.",
                          RuntimeWarning)
        self._write_errors.append(exc)

    # ---------------------------------------------------------------- end
    def end(self, create_graph: bool = False, create_svg: bool = False, *, status: str = "FINISHED",
            error: str | None = None) -> Path:
        """Flush everything, write the PROV-JSON (atomically) and, if asked, its DOT/SVG picture."""
        self._check_open("end_run")
        self._close_helpers()
        self._stop_sampler()  # before closing, so that its last sample is not refused
        with self._lock:
            self._check_open("end_run")
            self._open = False
            self._series = {}
        try:
            path = self._finish(status, error, create_graph, create_svg)
        finally:
            self._ended.set()
            state.release(self)
            sentinel.ended()
        from .distributed.ending import end_with_other_ranks

        end_with_other_ranks(self, status)
        if self._mirror is not None:
            collection = self.run_dir / COLLECTION_FILE if self.rank == 0 else None
            self._mirror.finish(status, path, collection)
        return path

    def add_closer(self, close: Any) -> None:
        """Have ``close()`` called at the start of end_run, while the run still records (a wrapper's writer
        thread finishing its file and logging it as an artifact); once, however often it is asked."""
        if close not in self._closers:
            self._closers.append(close)

    def _close_helpers(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            try:
                close()
            except Exception as exc:  # a helper's failure is said; the record is still written
                warnings.warn(f"yprov4ml: {close!r} failed at end_run: {type(exc).__name__}: {exc}", RuntimeWarning)

    def _finish(self, status: str, error: str | None, create_graph: bool, create_svg: bool) -> Path:
        self._stop_collectors()
        self._writer.close()
        info = self.record.info
        info.end_time, info.status, info.error = _now(), status, error
        lost = self._unwritten_points()
        if self._write_errors:
            info.error = (info.error + "; " if info.error else "") + \
                f"{len(self._write_errors)} metric write(s) failed ({self._write_errors[-1]})" + \
                (f"; {lost} point(s) could not be written and are lost" if lost else "; all points written later")
        metrics_path = self._writer.file.path
        digest = sha256_of(metrics_path) if metrics_path.is_file() else None
        for series in self.record.metrics.values():
            series.sha256 = digest
            if series.count:
                self.record.touch_context(series.context, series.first_time)
                self.record.touch_context(series.context, series.last_time)
        if self._final_metrics or self.options.metrics_export is not None:
            written = self._written_series()
            self._fold_final_metrics(written)
            if self.options.metrics_export is not None:
                self._export_series(written)
        if not self._files.finish(FILES_WAIT_S.get(status, FILES_WAIT_S["FINISHED"])):
            for item in [*self.record.artifacts, *self.record.models]:
                if item.sha256 is None:  # a killed job's last seconds go to the record, not the hashing
                    item.attributes["sha256_pending"] = True
        snapshot, self.record.randomness = self._reproducibility.finish(
            KILLED_SNAPSHOT_WAIT_S if status == "KILLED" else SNAPSHOT_WAIT_S)
        self.record.source.update(snapshot)
        packages = self._shared_capture(status) if self._takes_shared_capture else self._reproducibility.packages
        try:
            self.record.environment = capture_environment(self.options.keep_in_clear, packages)
            if packages is not None and self._takes_shared_capture:
                self.record.environment["captured_by_rank"] = 0
            gpu = self._collectors.get("gpu")
            if gpu is not None:
                self.record.environment["accelerators"] += gpu.describe()
        except Exception as exc:  # an odd installation must not lose the record
            self.record.environment = {"capture_error": f"{type(exc).__name__}: {exc}"}
        try:
            path = self.write_prov(create_graph=create_graph, create_svg=create_svg)
            self.journal.write("end", status=info.status, error=info.error, end_time=info.end_time)
        except OSError as exc:  # a full disk: the journal and the flushed chunks stay recoverable
            raise ProvenanceDirError(
                f"run {self.run_id}: the PROV-JSON could not be written to {self.prov_path} "
                f"({exc.strerror or exc}); {lost} metric point(s) were not written. What was flushed is kept: "
                f"free space, then run `yprov4ml recover {self.run_dir}`."
            ) from exc
        finally:
            self.journal.close()
        if self.run_dir != self.final_dir:  # staged: every file of this rank, atomically into the shared directory
            move_into(self.run_dir, self.final_dir)
            self.run_dir, self.prov_path = self.final_dir, prov_file(self.final_dir, self.rank)
            path = self.prov_path
        if info.parent_task:
            register(info.parent_task, "end", info.run_id, self.rank, self.run_dir, path)
        return path

    def _shared_capture(self, status: str) -> tuple[list[str], list[str]] | None:
        """Rank 0's package list (and, into the source facts, its git state) when they apply to this rank;
        what does not apply or does not come in time this rank captures itself (git here, packages after)."""
        facts = None
        for _ in backing_off(0.0 if status == "KILLED" else SHARED_CAPTURE_WAIT_S, 0.05, 1.0):
            try:
                facts = read_shared(self.final_dir, self.record.source.get("script"))
                break
            except FileNotFoundError:  # rank 0 is still listing
                continue
        git = shared_source(facts)
        if git is None:
            script = self.record.source.get("script")
            git = git_state(Path(script).parent if script else Path(self.record.info.working_dir))
        else:
            git["captured_by_rank"] = 0
        self.record.source.update(git)
        return shared_packages(facts)

    def _unwritten_points(self) -> int:
        return sum(len(s.pending) + len(s.unwritten) for s in self.record.metrics.values())

    def write_prov(self, create_graph: bool = False, create_svg: bool = False) -> Path:
        """Write this rank's PROV-JSON from the record, and its picture if asked."""
        from .prov.build import build_document
        from .prov.document import to_json

        data = to_json(build_document(self.record)).encode("utf-8")
        atomic_write_bytes(self.prov_path, data)
        self.prov_written = (hashlib.sha256(data).hexdigest(), len(data))  # what the rank reports at its end
        if create_graph or create_svg:
            from .prov.picture import run_picture

            run_picture([json.loads(data)]).write(self.run_dir / f"graph.rank{self.rank}.dot", svg=create_svg)
        return self.prov_path

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._open:
            status, error = outcome(exc)
            state.end_from_outside(self, status, error)
            if status == "FAILED" and exc is not None:  # as the run's own hook would have (safety.py)
                after_if_uncaught(exc, abort_mpi_world_after_failure)


def mirror_uri(given: str | None) -> str | None:
    """The MLflow tracking URI to mirror to (argument, else ``$YPROV4ML_MLFLOW_TRACKING_URI``), mlflow checked."""
    uri = given if given is not None else os.environ.get("YPROV4ML_MLFLOW_TRACKING_URI") or None
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise ValueError(f"mlflow_tracking_uri must be a tracking URI such as http://host:5000 or "
                             f"sqlite:///mlflow.db, got {uri!r}")
        from .integrations.mlflow_link import require_mlflow

        require_mlflow()
    return uri


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
