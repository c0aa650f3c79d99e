"""Sending a run's parts to MLflow: experiment, tags, params, metric points in batches, files.

Shared by the export of finished runs and the live mirror; reads nothing of
a recorded run back (the mirror is on the writer's side).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..storage.files import resolve_inside
from . import mlflow_names as names


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


def parent_tags(run_id: str, world_size: int, experiment: str, status: str, user: str) -> dict[str, str]:
    """MLflow tags of the parent run that holds a distributed run's ranks as its children."""
    return {names.RUN_ID_TAG: run_id, names.RANK_TAG: names.ALL_RANKS, "yprov4ml.world_size": str(world_size),
            "yprov4ml.experiment": experiment, "yprov4ml.status": status, "mlflow.user": user or "unknown"}


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
