"""Recorded runs → MLflow: params, every metric point, tags, artifacts, times and status.

A run directory with one rank document becomes one MLflow run; a collected
distributed run becomes a parent run with one child run per rank. A run is
found again by its ``yprov4ml.run_id`` / ``yprov4ml.rank`` tags, so exporting
it twice does not duplicate it; a half-finished export is replaced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..prov.reader import RunView, load_run
from ..storage.files import resolve_inside
from ..storage.layout import COLLECTION_FILE, rank_documents
from . import mlflow_names as names
from .mlflow_link import is_mlflow_error, mlflow_client, translated


@dataclass
class Exported:
    """One yprov4ml run (or rank) and the MLflow run that holds it."""

    source: str
    mlflow_run_id: str
    points: int
    skipped: bool  # already exported before: left as it was


def experiment_id(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The id of the MLflow experiment ``name``, created when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # another rank (or another exporter) created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


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
    tags = {names.RUN_ID_TAG: first.run_id, names.RANK_TAG: names.ALL_RANKS, "yprov4ml.world_size": str(first.world_size),
            "yprov4ml.experiment": first.experiment, "yprov4ml.status": status, "mlflow.user": _user(first)}
    starts = [t for v in views if (t := _seconds(v.start_time)) is not None]
    ends = [t for v in views if (t := _seconds(v.end_time)) is not None]
    run = client.create_run(exp_id, start_time=names.to_ms(min(starts)) if starts else None, tags=tags,
                            run_name=f"{first.run_id} ({len(views)} ranks)")
    mlflow_id = run.info.run_id
    log_params(client, mlflow_id, first.params)
    collection = run_dir / COLLECTION_FILE
    if collection.is_file():
        client.log_artifact(mlflow_id, str(collection), "provenance")
    client.set_terminated(mlflow_id, names.STATUS_TO_MLFLOW.get(status, "FAILED"),
                          end_time=names.to_ms(max(ends)) if ends else None)
    return Exported(str(run_dir), mlflow_id, 0, False)


def _user(view: RunView) -> str:
    return view.user or "unknown"


def run_tags(view: RunView) -> dict[str, str]:
    """The tags of the MLflow run of one rank: identity, status, source commit, user, contexts."""
    return identity_tags(view.run_id, view.rank, view.world_size, view.experiment, view.status,
                         str(view.run.get("host", "")), _user(view), view.source, view.error,
                         {c for _, c in view.metrics})


def identity_tags(run_id: str, rank: int, world_size: int, experiment: str, status: str, host: str, user: str,
                  source: dict[str, Any], error: str | None, contexts: set[str]) -> dict[str, str]:
    """MLflow tags naming a rank's run: yprov4ml's ids and status, MLflow's user and source tags."""
    tags = {
        names.RUN_ID_TAG: run_id, names.RANK_TAG: str(rank), "yprov4ml.world_size": str(world_size),
        "yprov4ml.experiment": experiment, "yprov4ml.status": status,
        "yprov4ml.contexts": ",".join(sorted(contexts)), "yprov4ml.host": host, "mlflow.user": user or "unknown",
    }
    commit = source.get("git_commit") or source.get("commit")
    if commit:
        tags["mlflow.source.git.commit"] = str(commit)
    if source.get("script"):
        tags["mlflow.source.name"] = str(source["script"])
    if error:
        tags["yprov4ml.error"] = error[: names.MAX_TAG_TEXT]
    return tags


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
    log_params(client, mlflow_id, view.params)
    points = send_series(client, mlflow_id, [(k, c, d.unit, d.steps, d.times, d.values)
                                             for (k, c), d in sorted(view.metrics.items())], progress=progress)
    log_files(client, mlflow_id, view.run_dir,
              [("models", m.get("prov:location")) for m in view.models] +
              [("artifacts", a.get("prov:location")) for a in view.artifacts], view.prov_path)
    if view.status in ("FINISHED", "FAILED", "KILLED"):
        end = _seconds(view.end_time)
        client.set_terminated(mlflow_id, view.status, end_time=names.to_ms(end) if end else None)
    client.set_tag(mlflow_id, names.COMPLETE_TAG, "true")
    return Exported(str(view.prov_path), mlflow_id, points, False)


def log_params(client: Any, mlflow_id: str, params: dict[str, Any], taken: set[str] | None = None) -> None:
    """Params as MLflow text, with a tag holding the exact value where the text loses it.

    ``taken`` (MLflow param keys used before, updated here) lets a caller send params in several parts.
    """
    from mlflow.entities import Param, RunTag

    keys = names.unique_keys(sorted(params), taken)
    batch_params, batch_tags = [], []
    for key in sorted(params):
        value, in_mlflow = params[key], keys[key]
        batch_params.append(Param(in_mlflow, names.param_text(value)[: names.MAX_PARAM_TEXT]))
        if names.param_needs_tag(key, value, in_mlflow):
            exact = json.dumps({"key": key, "value": value}, ensure_ascii=False, default=str)
            if len(exact) <= names.MAX_TAG_TEXT:
                batch_tags.append(RunTag(names.PARAM_TAG + in_mlflow, exact))
    for start in range(0, len(batch_params), names.TAGS_PER_BATCH):
        client.log_batch(mlflow_id, params=batch_params[start: start + names.TAGS_PER_BATCH])
    _log_tags(client, mlflow_id, batch_tags)


def _log_tags(client: Any, mlflow_id: str, tags: list[Any]) -> None:
    for start in range(0, len(tags), names.TAGS_PER_BATCH):
        client.log_batch(mlflow_id, tags=tags[start: start + names.TAGS_PER_BATCH])


def send_series(client: Any, mlflow_id: str, series: list[tuple[str, str, str | None, list, list, list]],
                *, progress: bool = True, keys: dict[str, str] | None = None) -> int:
    """Log every point of each (key, context, unit, steps, times, values) in batches of 1,000; the count sent.

    ``keys`` (``<context>/<key>`` → MLflow key, filled here) lets a caller send series in several parts:
    a series already in it keeps its key, and its description tag is sent again only to flag infinities.
    """
    from mlflow.entities import Metric, RunTag
    from tqdm import tqdm

    keys = {} if keys is None else keys
    new = [f"{context}/{key}" for key, context, *_ in series if f"{context}/{key}" not in keys]
    fresh = names.unique_keys(new, set(keys.values()))
    keys.update(fresh)
    _log_tags(client, mlflow_id, [RunTag(names.SERIES_TAG + keys[f"{context}/{key}"],
                                         names.series_tag(key, context, unit, values))
                                  for key, context, unit, _, _, values in series
                                  if f"{context}/{key}" in fresh or any(map(math.isinf, values))])
    total = sum(len(values) for *_, values in series)
    sent = 0
    with tqdm(total=total, unit="pt", desc=f"MLflow run {mlflow_id[:8]}", disable=not progress or None,
              leave=False) as bar:
        batch: list[Any] = []
        for key, context, _, steps, times, values in series:
            mlflow_name = keys[f"{context}/{key}"]
            for step, when, value in zip(steps, times, values):
                batch.append(Metric(mlflow_name, value, names.to_ms(when), step))
                if len(batch) == names.METRICS_PER_BATCH:
                    client.log_batch(mlflow_id, metrics=batch)
                    sent += len(batch)
                    bar.update(len(batch))
                    batch = []
        if batch:
            client.log_batch(mlflow_id, metrics=batch)
            sent += len(batch)
            bar.update(len(batch))
    return sent


def log_files(client: Any, mlflow_id: str, run_dir: Path, files: list[tuple[str, Any]], document: Path) -> None:
    """Model versions and logged files ((folder, location in the run directory)) and the PROV-JSON, as artifacts.

    A file keeps its place in the run directory (``models/rank0/net.v1.pt``); one
    outside it (logged with ``copy=False``, or a location that leaves the run directory) is left out.
    """
    base = Path(run_dir).resolve()
    for folder, location in files:
        path = resolve_inside(base, location) if isinstance(location, str) else None
        if path is None or not path.exists():
            continue
        place = path.relative_to(base)
        if path.is_dir():
            client.log_artifacts(mlflow_id, str(path), place.as_posix())
        else:
            parent = place.parent.as_posix()
            client.log_artifact(mlflow_id, str(path), folder if parent in ("", ".") else parent)
    client.log_artifact(mlflow_id, str(document), "provenance")
