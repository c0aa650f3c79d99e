"""MLflow runs → yprov4ml run directories (PROV-JSON + metric files) that every yprov4ml command reads.

Runs exported by yprov4ml come back as they were (keys, contexts, typed
params, ±inf; ranks of one run into one directory); other MLflow runs get
context ``training`` for keys without a ``/`` prefix. MLflow's ids are kept
as attributes of the run activity.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..errors import NotARunError
from ..prov.build import build_document
from ..prov.document import to_json
from ..record import FileEntity, Param, RunInfo, RunRecord
from ..storage.files import atomic_write_text, resolve_inside, sha256_of
from ..storage.layout import metric_file, prov_file
from ..storage.names import UniqueNames, safe_part
from ..storage.series import MetricSeries
from ..storage.writer import MetricFileWriter
from . import mlflow_names as names
from .mlflow_link import is_mlflow_error, mlflow_client, translated

CHUNK_POINTS = 1 << 16


def import_runs(tracking_uri: str, out_dir: str | Path, *, run_ids: list[str] | None = None,
                experiment: str | None = None) -> list[Path]:
    """Write the given MLflow runs (or every run of ``experiment``) under ``out_dir``; their documents."""
    if not run_ids and not experiment:
        raise ValueError("name the MLflow runs to import: --run-id ID or --experiment NAME")
    client = mlflow_client(tracking_uri)
    try:
        return _import(client, tracking_uri, Path(out_dir), run_ids, experiment)
    except Exception as exc:
        if is_mlflow_error(exc):
            raise translated(exc, tracking_uri) from exc
        raise


def _import(client: Any, tracking_uri: str, out_dir: Path, run_ids: list[str] | None,
            experiment: str | None) -> list[Path]:
    if run_ids:
        runs = [client.get_run(run_id) for run_id in run_ids]
    elif experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise NotARunError(f"MLflow at {tracking_uri} has no experiment {experiment!r}")
        runs = list(_all_runs(client, found.experiment_id))
    written = []
    for run in runs:
        if run.data.tags.get(names.RANK_TAG) == names.ALL_RANKS:  # a parent: its ranks are the children
            children = client.search_runs([run.info.experiment_id],
                                          f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
            if run_ids:
                written += [import_run(client, child, out_dir) for child in children]
            continue
        written.append(import_run(client, run, out_dir))
    return written


def _all_runs(client: Any, experiment_id: str):
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def import_run(client: Any, run: Any, out_dir: Path) -> Path:
    """One MLflow run as one rank document (and its metric files, and its artifacts)."""
    tags = run.data.tags
    info = run.info
    experiment = tags.get("yprov4ml.experiment") or client.get_experiment(info.experiment_id).name
    run_id = safe_part(tags.get(names.RUN_ID_TAG) or f"mlflow-{info.run_id}")
    rank = _count(tags.get(names.RANK_TAG), 0)
    run_dir = out_dir.absolute() / safe_part(experiment) / run_id
    if prov_file(run_dir, rank).exists():
        raise NotARunError(f"{prov_file(run_dir, rank)} exists already: import into another directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    start = info.start_time / 1000 if info.start_time else 0.0
    end = info.end_time / 1000 if info.end_time else None
    world_size = max(_count(tags.get("yprov4ml.world_size"), 1), rank + 1)
    record = RunRecord(RunInfo(
        run_id=run_id, experiment=experiment, user_namespace="", user=tags.get("mlflow.user") or info.user_id or
        "unknown", run_dir=str(run_dir), rank=rank, world_size=world_size,
        host=tags.get("yprov4ml.host", ""), start_time=start, end_time=end,
        status=names.STATUS_FROM_MLFLOW.get(info.status, "FAILED"), error=tags.get("yprov4ml.error"),
        external_ids={"mlflow_run_id": info.run_id, "mlflow_experiment_id": info.experiment_id,
                      "mlflow_run_name": info.run_name, "imported_from": "mlflow"},
    ))
    for key, text in run.data.params.items():
        exact = _tag_json(tags, names.PARAM_TAG + key)
        if exact is not None and isinstance(exact.get("key"), str) and exact["key"] and "value" in exact:
            record.params[exact["key"]] = Param(exact["key"], exact["value"], start)
        else:
            record.params[key] = Param(key, names.param_value(text), start)
    file_names: dict[str, UniqueNames] = {}
    writer = MetricFileWriter(metric_file(run_dir, rank), rank)
    for mlflow_name in sorted(run.data.metrics):
        described = _series_description(tags, names.SERIES_TAG + mlflow_name)
        context, _, key = mlflow_name.partition("/") if "/" in mlflow_name else ("training", "", mlflow_name)
        key, context = described.get("key", key), described.get("context", context)
        points = sorted(((m.timestamp, m.step, m.value) for m in client.get_metric_history(info.run_id, mlflow_name)))
        name = file_names.setdefault(context, UniqueNames()).name(key)
        series = MetricSeries(key, context, len(record.metrics), name, writer.path, writer.path.name,
                              described.get("unit"))
        infinite = described["infinite"]
        rows = [(step, ms / 1000, names.restore_infinity(value) if infinite else value) for ms, step, value in points]
        for first in range(0, len(rows), CHUNK_POINTS):
            writer.write([(series, rows[first: first + CHUNK_POINTS])])
        record.metrics[key, context] = series
        if series.count:
            record.touch_context(context, series.first_time)
            record.touch_context(context, series.last_time)
    if writer.path.is_file():  # no file when no series has a point: readers take count 0 as empty
        digest = sha256_of(writer.path)
        for series in record.metrics.values():
            series.sha256 = digest
    record.artifacts = _artifacts(client, info.run_id, run_dir, end or start)
    path = prov_file(run_dir, rank)
    atomic_write_text(path, to_json(build_document(record)))
    return path


def _series_description(tags: dict[str, str], name: str) -> dict[str, Any]:
    """A series tag's key, context, unit and infinity flag, each kept only when it has the right type."""
    found = _tag_json(tags, name) or {}
    kept: dict[str, Any] = {field: found[field] for field in ("key", "context", "unit")
                            if isinstance(found.get(field), str) and found[field]}
    kept["infinite"] = found.get("infinite") is True
    return kept


def _count(text: str | None, default: int) -> int:
    """A rank or world size read from a tag (text from the store): a small non-negative integer, else ``default``."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) <= 7 else default


def _tag_json(tags: dict[str, str], name: str) -> dict[str, Any] | None:
    try:
        value = json.loads(tags[name])
    except (KeyError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _artifacts(client: Any, mlflow_id: str, run_dir: Path, when: float) -> list[FileEntity]:
    """The run's MLflow artifacts, downloaded under ``artifacts/`` (its own exported PROV-JSON left out).

    Artifact paths come from the store: one that would leave ``artifacts/`` is refused with a warning.
    """
    found = []
    root = run_dir / "artifacts"
    stack = [item for item in client.list_artifacts(mlflow_id) if item.path != "provenance"]
    while stack:
        item = stack.pop()
        if item.is_dir:
            stack += client.list_artifacts(mlflow_id, item.path)
            continue
        place = item.path.removeprefix("artifacts/")
        target = resolve_inside(root, place)
        if target is None or target == root.resolve():
            warnings.warn(f"MLflow run {mlflow_id}: artifact path {item.path!r} leaves the run directory; "
                          "not imported", RuntimeWarning)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        downloaded = Path(client.download_artifacts(mlflow_id, item.path, str(run_dir / ".download")))
        shutil.move(str(downloaded), target)
        found.append(FileEntity(name=item.path, path=target.relative_to(run_dir.resolve()).as_posix(),
                                size=target.stat().st_size, sha256=sha256_of(target), time=when,
                                attributes={"mlflow_artifact_path": item.path}))
    shutil.rmtree(run_dir / ".download", ignore_errors=True)
    return sorted(found, key=lambda f: f.name)


__all__ = ["import_runs", "import_run"]
