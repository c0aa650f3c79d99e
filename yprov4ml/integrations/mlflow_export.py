"""Recorded runs → MLflow: params, every metric point, tags, artifacts, times and status.

A run directory with one rank document becomes one MLflow run; a collected
distributed run becomes a parent run with one child run per rank. A run is
found again by its ``yprov4ml.run_id`` / ``yprov4ml.rank`` tags, so exporting
it twice does not duplicate it; a half-finished export is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..prov.reader import RunView, load_run
from ..storage.layout import COLLECTION_FILE, rank_documents
from . import mlflow_names as names
from .mlflow_link import is_mlflow_error, mlflow_client, translated
from .mlflow_send import NameBook, experiment_id, identity_tags, log_params, parent_tags, send_record, send_series


@dataclass
class Exported:
    """One yprov4ml run (or rank) and the MLflow run that holds it."""

    source: str
    mlflow_run_id: str
    points: int
    skipped: bool  # already exported before: left as it was


def export_runs(paths: Iterable[str | Path], tracking_uri: str, experiment: str | None = None, *,
                artifact_location: str | None = None, progress: bool = True) -> list[Exported]:
    """Export run directories (or an experiment directory of them) to the MLflow at ``tracking_uri``."""
    run_dirs = _run_dirs(paths)  # bad paths are refused before anything is sent
    client = mlflow_client(tracking_uri)
    try:
        return _export(client, run_dirs, experiment, artifact_location, progress)
    except Exception as exc:
        if is_mlflow_error(exc):
            raise translated(exc, tracking_uri) from exc
        raise


def _export(client: Any, run_dirs: list[Path], experiment: str | None, artifact_location: str | None,
            progress: bool) -> list[Exported]:
    done: list[Exported] = []
    for run_dir in run_dirs:
        documents = rank_documents(run_dir)
        views = [load_run(path) for path in documents]
        exp_id = experiment_id(client, experiment or views[0].experiment, artifact_location)
        if len(views) == 1:
            done.append(export_view(client, exp_id, views[0], progress=progress))
            continue
        parent = _parent_run(client, exp_id, views, run_dir)
        done.append(parent)
        for view in views:
            done.append(export_view(client, exp_id, view, parent=parent.mlflow_run_id, progress=progress))
        if not parent.skipped:
            client.set_tag(parent.mlflow_run_id, names.COMPLETE_TAG, "true")
    return done


def _run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    from ..tools.compare import find_runs

    return [path.parent if path.is_file() else path for path in find_runs(paths)]


def _seconds(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _existing(client: Any, exp_id: str, run_id: str, rank: str) -> Any | None:
    """The MLflow run a previous export made; a partial one is deleted (and made again)."""
    for found in client.search_runs([exp_id], names.filter_for(run_id, rank), max_results=10):
        if found.data.tags.get(names.COMPLETE_TAG) == "true":
            return found
        client.delete_run(found.info.run_id)
    return None


def _parent_run(client: Any, exp_id: str, views: list[RunView], run_dir: Path) -> Exported:
    first = views[0]
    old = _existing(client, exp_id, first.run_id, names.ALL_RANKS)
    if old is not None:
        return Exported(str(run_dir), old.info.run_id, 0, True)
    statuses = {v.status for v in views}
    status = "FINISHED" if statuses == {"FINISHED"} else ("FAILED" if "FAILED" in statuses else "KILLED")
    tags = parent_tags(first.run_id, first.world_size, first.experiment, status, first.user)
    starts = [t for v in views if (t := _seconds(v.start_time)) is not None]
    ends = [t for v in views if (t := _seconds(v.end_time)) is not None]
    run = client.create_run(exp_id, start_time=names.to_ms(min(starts)) if starts else None, tags=tags,
                            run_name=f"{first.run_id} ({len(views)} ranks)")
    mlflow_id = run.info.run_id
    book = NameBook()
    log_params(client, mlflow_id, first.params, book)
    book.upload(client, mlflow_id)
    collection = run_dir / COLLECTION_FILE
    if collection.is_file():
        client.log_artifact(mlflow_id, str(collection), "provenance")
    client.set_terminated(mlflow_id, names.STATUS_TO_MLFLOW.get(status, "FAILED"),
                          end_time=names.to_ms(max(ends)) if ends else None)
    return Exported(str(run_dir), mlflow_id, 0, False)


def run_tags(view: RunView) -> dict[str, str]:
    """The tags of the MLflow run of one rank: identity, status, source commit, user, contexts."""
    return identity_tags(view.run_id, view.rank, view.world_size, view.experiment, view.status,
                         str(view.run.get("host", "")), view.user, view.source, view.error,
                         {c for _, c in view.metrics})


def export_view(client: Any, exp_id: str, view: RunView, *, parent: str | None = None,
                progress: bool = True) -> Exported:
    """One rank's record as one MLflow run (a child of ``parent`` when given)."""
    old = _existing(client, exp_id, view.run_id, str(view.rank))
    if old is not None:
        return Exported(str(view.prov_path), old.info.run_id, 0, True)
    tags = run_tags(view)
    if parent:
        tags["mlflow.parentRunId"] = parent
    start = _seconds(view.start_time)
    run = client.create_run(exp_id, start_time=names.to_ms(start) if start else None, tags=tags,
                            run_name=f"{view.run_id} rank {view.rank}" if view.world_size > 1 else view.run_id)
    mlflow_id = run.info.run_id
    book = NameBook()
    log_params(client, mlflow_id, view.params, book)
    points = send_series(client, mlflow_id, [(k, c, d.unit, d.steps, d.times, d.values)
                                             for (k, c), d in sorted(view.metrics.items()) if d.kind == "scalar"],
                         book, progress=progress)  # vectors stay in the metric file sent with the run
    send_record(client, exp_id, mlflow_id, view.prov_path)
    book.upload(client, mlflow_id)
    if view.status in ("FINISHED", "FAILED", "KILLED"):
        end = _seconds(view.end_time)
        client.set_terminated(mlflow_id, view.status, end_time=names.to_ms(end) if end else None)
    client.set_tag(mlflow_id, names.COMPLETE_TAG, "true")
    return Exported(str(view.prov_path), mlflow_id, points, False)
