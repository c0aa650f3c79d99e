"""Live mirror of a run to MLflow, from a background thread that follows the run's metric files.

The hot path is untouched: ``log_metric`` appends to memory, the metric
writer appends chunks to files, and this thread reads whatever whole chunks
have reached the rank's metric file since its last look (``read_records_from``) and sends
them in batches. It never blocks training: while MLflow does not answer,
it warns once and waits; the local record goes on, and what was missed is
sent when MLflow answers again, at the latest when the run ends. A mirror
that could not finish leaves its MLflow run without the complete tag, so a
later ``yprov4ml export mlflow`` replaces it with a full copy.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ..storage.metric_file import read_records_from
from . import mlflow_names as names
from .mlflow_link import probe, require_mlflow
from .mlflow_send import NameBook, experiment_id, identity_tags, log_params, parent_tags, send_record, send_series

INTERVAL_S = 5.0      # between two looks at the files
END_WAIT_S = 60.0     # the most end_run waits for the last points to be sent
RETRY_AT_END_S = 10.0  # how long end_run keeps asking an MLflow that does not answer
KILLED_WAIT_S = 5.0   # a killed job has seconds before SIGKILL
PARENT_WAIT_S = 60.0  # how long a rank looks for the parent run that rank 0 creates
PARENT_AT_END_S = 30.0  # at end_run, how long a rank that has not found it yet still looks (within END_WAIT_S)


class MlflowMirror:
    """Mirrors one rank's run to the MLflow at ``tracking_uri`` as it goes."""

    def __init__(self, run: Any, tracking_uri: str, interval_s: float = INTERVAL_S):
        require_mlflow()
        self._run = run
        self.tracking_uri = tracking_uri
        self._interval = interval_s
        self._client: Any = None
        self.mlflow_run_id: str | None = None
        self._parent_id: str | None = None
        self._experiment_id: str | None = None
        self._offset = 0  # bytes of the metric file sent so far
        self._sent_of_part: dict[int, int] = {}  # series number → its points of the current part already sent
        self._series_keys: dict[str, str] = {}  # "<context>/<key>" → MLflow key
        self._sent_params: set[str] = set()
        self._param_keys: set[str] = set()
        self._parent_param_keys: set[str] = set()
        self._book = NameBook()  # what MLflow's keys lose, for the rank's MLflow run and (rank 0) the parent
        self._parent_book = NameBook()
        self._warned = False
        self._final: tuple[str, Path, Path | None] | None = None
        self._wake = threading.Event()
        self.done = threading.Event()  # set when the mirror has sent everything (or given up)
        self.complete = False
        self._thread = threading.Thread(target=self._loop, name="yprov4ml-mlflow-mirror", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ---------------------------------------------------------------- thread
    def _loop(self) -> None:
        while self._final is None:
            self._sync()
            self._wake.wait(self._interval)
            self._wake.clear()
        status = self._final[0]
        deadline = time.monotonic() + (KILLED_WAIT_S - 1.0 if status == "KILLED" else RETRY_AT_END_S)
        try:
            while not self._sync():  # MLflow away at the end: keep trying while end_run waits
                if time.monotonic() + 1.0 > deadline:
                    return
                time.sleep(1.0)
            if status != "KILLED":
                self._await_parent()
            self._finish_remote(*self._final)
        except Exception as exc:
            self._offline(exc)
        finally:
            self.done.set()

    def _await_parent(self) -> None:
        """A rank that ends before rank 0's mirror made the parent run (a busy machine, a short run) looks a
        while longer, so that it still becomes the parent's child instead of a run of its own."""
        deadline = time.monotonic() + PARENT_AT_END_S
        while self._parent_id is None and time.monotonic() < deadline:
            time.sleep(0.5)
            self._find_parent()

    def _sync(self) -> bool:
        """Send what is new; False (after one warning) when MLflow cannot be reached now."""
        try:
            problem = probe(self.tracking_uri, timeout_s=2.0)
            if problem:
                raise ConnectionError(problem)
            if self._client is None:
                self._connect()
            self._find_parent()
            self._send_params()
            self._send_points()
        except Exception as exc:
            self._offline(exc)
            return False
        return True

    def _offline(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"yprov4ml: the MLflow mirror of run {self._run.run_id} cannot reach "
                          f"{self.tracking_uri} ({type(exc).__name__}: {exc}). Recording goes on locally; "
                          "what was missed is sent when MLflow answers again, at the latest at end_run.",
                          RuntimeWarning, stacklevel=1)

    # ---------------------------------------------------------------- remote side
    def _connect(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        info = self._run.record.info
        self._experiment_id = experiment_id(client, info.experiment)
        found = client.search_runs([self._experiment_id], names.filter_for(info.run_id, str(info.rank)),
                                   max_results=1)
        if found:  # this process reconnecting after a failed create call that did reach the server
            self.mlflow_run_id = found[0].info.run_id
        else:
            tags = identity_tags(info.run_id, info.rank, info.world_size, info.experiment, "RUNNING", info.host,
                                 info.user, self._run.record.source, None, set())
            tags["yprov4ml.mirror"] = "live"
            name = f"{info.run_id} rank {info.rank}" if info.world_size > 1 else info.run_id
            self.mlflow_run_id = client.create_run(self._experiment_id, start_time=names.to_ms(info.start_time),
                                                   tags=tags, run_name=name).info.run_id
        self._client = client

    def _find_parent(self) -> None:
        """Distributed runs: rank 0 makes the parent run; the others find it and become its children."""
        info = self._run.record.info
        if self._parent_id is not None or info.world_size < 2 or not info.collect_all_processes:
            return
        found = self._client.search_runs([self._experiment_id], names.filter_for(info.run_id, names.ALL_RANKS),
                                         max_results=1)
        if found:
            self._parent_id = found[0].info.run_id
        elif info.rank == 0:
            tags = {**parent_tags(info.run_id, info.world_size, info.experiment, "RUNNING", info.user),
                    "yprov4ml.mirror": "live"}
            self._parent_id = self._client.create_run(
                self._experiment_id, start_time=names.to_ms(info.start_time), tags=tags,
                run_name=f"{info.run_id} ({info.world_size} ranks)").info.run_id
        elif time.time() - info.start_time > PARENT_WAIT_S:
            self._parent_id = ""  # rank 0 does not mirror: stay a run of its own
            return
        else:
            return
        self._client.set_tag(self.mlflow_run_id, "mlflow.parentRunId", self._parent_id)

    def _send_params(self) -> None:
        new = {key: p.value for key, p in list(self._run.record.params.items()) if key not in self._sent_params}
        if not new:
            return
        log_params(self._client, self.mlflow_run_id, new, self._book, taken=self._param_keys)
        self._book.upload(self._client, self.mlflow_run_id)
        if self._parent_id and self._run.record.info.rank == 0:
            log_params(self._client, self._parent_id, new, self._parent_book, taken=self._parent_param_keys)
            self._parent_book.upload(self._client, self._parent_id)
        self._sent_params.update(new)

    def _send_points(self) -> None:
        """The whole records that reached the metric file since the last look, a batch at a time."""
        path = self._run._writer.file.path
        if not path.exists() or path.stat().st_size <= self._offset:
            return
        part, end = read_records_from(path, self._offset)
        by_number = {series.number: series for series in list(self._run.record.metrics.values())}
        for number, data in sorted(part.series.items()):
            series = by_number.get(number)
            if series is None or series.kind != "scalar":  # MLflow metrics are numbers
                continue
            # The offset moves once the whole part is sent; ``_sent_of_part`` counts the batches of it that
            # went before a failure, so that no point is sent twice when the part is read again.
            for first in range(self._sent_of_part.get(number, 0), len(data.values), names.METRICS_PER_BATCH):
                last = first + names.METRICS_PER_BATCH
                send_series(self._client, self.mlflow_run_id,
                            [(series.key, series.context, series.unit, data.steps[first:last], data.times[first:last],
                              data.values[first:last])], self._book, progress=False, keys=self._series_keys)
                self._sent_of_part[number] = last
        self._book.upload(self._client, self.mlflow_run_id)  # a new series, or a first infinity
        self._offset = end
        self._sent_of_part.clear()

    def _finish_remote(self, status: str, document: Path, collection: Path | None) -> None:
        record = self._run.record
        info = record.info
        client = self._client
        send_record(client, self._experiment_id, self.mlflow_run_id, document)
        self._book.upload(client, self.mlflow_run_id)
        contexts = {c for _, c in record.metrics}
        client.set_tag(self.mlflow_run_id, "yprov4ml.status", status)
        client.set_tag(self.mlflow_run_id, "yprov4ml.contexts", ",".join(sorted(contexts)))
        if info.error:
            client.set_tag(self.mlflow_run_id, "yprov4ml.error", info.error[: names.MAX_TAG_TEXT])
        end_ms = names.to_ms(info.end_time or time.time())
        client.set_terminated(self.mlflow_run_id, names.STATUS_TO_MLFLOW.get(status, "FAILED"), end_time=end_ms)
        client.set_tag(self.mlflow_run_id, names.COMPLETE_TAG, "true")
        if self._parent_id and info.rank == 0:
            if collection is not None and collection.is_file():
                client.log_artifact(self._parent_id, str(collection), "provenance")
            client.set_tag(self._parent_id, "yprov4ml.status", status)
            client.set_terminated(self._parent_id, names.STATUS_TO_MLFLOW.get(status, "FAILED"), end_time=end_ms)
            client.set_tag(self._parent_id, names.COMPLETE_TAG, "true")
        self.complete = True

    # ---------------------------------------------------------------- end
    def finish(self, status: str, document: Path, collection: Path | None = None) -> bool:
        """Send the rest, the files and the end; wait a bounded time. True when MLflow holds the whole run."""
        self._final = (status, document, collection)
        self._wake.set()
        wait = KILLED_WAIT_S if status == "KILLED" else END_WAIT_S
        if not self.done.wait(wait) or not self.complete:
            warnings.warn(
                f"yprov4ml: the MLflow mirror of run {self._run.run_id} could not send everything to "
                f"{self.tracking_uri}. The local record is complete: `yprov4ml export mlflow "
                f"{self._run.run_dir} --tracking-uri {self.tracking_uri}` sends the whole run.",
                RuntimeWarning, stacklevel=2)
            return False
        return True
