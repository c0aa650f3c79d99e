"""MLflow runs → yprov4ml run directories (PROV-JSON + metric files) that every yprov4ml command reads.

A run that yprov4ml exported (or mirrored) holds its own PROV document and the
files it names: those come back byte for byte, so the imported record is the
original one (same records, relations and points); where MLflow came from is
written beside it (``IMPORTED_FROM``). Other MLflow runs get a document built
from MLflow's data: context ``training`` for keys without a ``/`` prefix,
MLflow's ids as attributes of the run activity.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import DocumentError, NotARunError
from ..prov.build import build_document
from ..prov.decode import RankDocument, checked_schema, rank_document, record_places
from ..prov.document import to_json
from ..record import FileEntity, Param, RunInfo, RunRecord
from ..storage.files import atomic_write_bytes, atomic_write_text, read_json_and_bytes, resolve_inside, sha256_of
from ..storage.layout import COLLECTION_FILE, metric_file, prov_file
from ..storage.names import UniqueNames, safe_part
from ..storage.series import MetricSeries
from ..storage.writer import MetricFileWriter
from . import mlflow_names as names
from .mlflow_link import is_mlflow_error, mlflow_client, translated

CHUNK_POINTS = 1 << 16
IMPORTED_FROM = "imported_from_mlflow.json"  # beside an imported record: the MLflow run it came from


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
                ranks = [import_run(client, child, out_dir) for child in children]
                written += ranks
                _import_collection(client, run, {path.parent for path in ranks})
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
    """One MLflow run as one rank document (and its metric files, and its artifacts): the exported record
    itself when the run holds one, else a document built from MLflow's data."""
    with tempfile.TemporaryDirectory() as scratch:
        exported = _exported_document(client, run, Path(scratch))
        if exported is not None:
            return _import_record(client, run, out_dir, *exported)
    return _import_from_mlflow_data(client, run, out_dir)


def _exported_document(client: Any, run: Any, scratch: Path) -> tuple[RankDocument, bytes] | None:
    """The PROV document yprov4ml sent with the run (``provenance/prov.rankN.json``), checked; None when the
    run has none, or one that is not a yprov4ml rank document (then MLflow's data is used, with a warning)."""
    rank = _count(run.data.tags.get(names.RANK_TAG), 0)
    place = f"provenance/prov.rank{rank}.json"
    if not _has_provenance_file(client, run.info.run_id, place):
        return None
    path = Path(client.download_artifacts(run.info.run_id, place, str(scratch)))
    try:
        data, raw = read_json_and_bytes(path)
        doc = rank_document(path, checked_schema(path, data))
    except (DocumentError, KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"MLflow run {run.info.run_id}: its {place} is not a yprov4ml record ({exc}); the run "
                      "is rebuilt from MLflow's data instead", RuntimeWarning)
        return None
    return doc, raw


def _import_record(client: Any, run: Any, out_dir: Path, doc: RankDocument, raw: bytes) -> Path:
    """The exported record back as it was: the document's bytes and every file it names, at their places."""
    run_dir = out_dir.absolute() / safe_part(str(doc.run.get("experiment") or "imported")) / safe_part(doc.run_id)
    target = prov_file(run_dir, doc.rank)
    if target.exists():
        raise NotARunError(f"{target} exists already: import into another directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    with tempfile.TemporaryDirectory() as scratch:
        for place in record_places(doc):
            destination = resolve_inside(run_dir, place)
            try:
                downloaded = Path(client.download_artifacts(run.info.run_id, place, scratch))
            except Exception as exc:  # MLflow raises its own kinds for a missing artifact
                if not is_mlflow_error(exc) and not isinstance(exc, OSError):
                    raise
                missing.append(place)
                continue
            if destination is not None and not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(downloaded), destination)
    if missing:
        warnings.warn(f"MLflow run {run.info.run_id} lacks {len(missing)} file(s) its record names "
                      f"({', '.join(missing[:5])}); the record is imported, and readers say what is missing",
                      RuntimeWarning)
    info = run.info
    atomic_write_text(run_dir / IMPORTED_FROM, json.dumps({
        "mlflow_run_id": info.run_id, "mlflow_experiment_id": info.experiment_id, "mlflow_run_name": info.run_name,
        "rank": doc.rank}, indent=2) + "\n")
    atomic_write_bytes(target, raw)  # last: a document in place means its files are there too
    return target


def _import_collection(client: Any, parent: Any, run_dirs: set[Path]) -> None:
    """The collection of a distributed run, beside its ranks when they all came back into one directory."""
    if len(run_dirs) != 1 or not _has_provenance_file(client, parent.info.run_id, f"provenance/{COLLECTION_FILE}"):
        return
    (run_dir,) = run_dirs
    if not (run_dir / COLLECTION_FILE).exists():
        with tempfile.TemporaryDirectory() as scratch:
            downloaded = client.download_artifacts(parent.info.run_id, f"provenance/{COLLECTION_FILE}", scratch)
            shutil.move(downloaded, run_dir / COLLECTION_FILE)


def _has_provenance_file(client: Any, mlflow_id: str, place: str) -> bool:
    """Whether the MLflow run holds ``place``, a file under its ``provenance/`` folder."""
    return place in {item.path for item in client.list_artifacts(mlflow_id, "provenance")}


def _import_from_mlflow_data(client: Any, run: Any, out_dir: Path) -> Path:
    """A document built from what MLflow holds: params, every metric point, artifacts, times and status."""
    tags = run.data.tags
    info = run.info
    book = _name_book(client, info.run_id, tags)
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
        exact = book["params"].get(key)
        if exact is not None and isinstance(exact.get("key"), str) and exact["key"] and "value" in exact:
            record.params[exact["key"]] = Param(exact["key"], exact["value"], start)
        else:
            record.params[key] = Param(key, names.param_value(text), start)
    file_names: dict[str, UniqueNames] = {}
    writer = MetricFileWriter(metric_file(run_dir, rank), rank)
    for mlflow_name in sorted(run.data.metrics):
        described = _series_description(book["series"].get(mlflow_name))
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


def _name_book(client: Any, mlflow_id: str, tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What the export kept beside MLflow's keys and text: its names artifact, or (exports of earlier
    releases) its ``yprov4ml.series.*`` / ``yprov4ml.param.*`` tags. Only JSON objects are kept."""
    book: dict[str, dict[str, Any]] = {"series": {}, "params": {}}
    if _has_provenance_file(client, mlflow_id, names.NAMES_ARTIFACT):
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(client.download_artifacts(mlflow_id, names.NAMES_ARTIFACT, scratch))
            try:
                found = read_json_and_bytes(path)[0]
            except DocumentError as exc:
                warnings.warn(f"MLflow run {mlflow_id}: {exc}; keys and params are read as MLflow shows them",
                              RuntimeWarning)
                found = {}
        for part in book:
            entries = found.get(part) if isinstance(found, dict) else None
            if isinstance(entries, dict):
                book[part] = {k: v for k, v in entries.items() if isinstance(v, dict)}
        return book
    for prefix, part in ((names.SERIES_TAG, "series"), (names.PARAM_TAG, "params")):
        for name in tags:
            if name.startswith(prefix) and (value := _tag_json(tags, name)) is not None:
                book[part][name[len(prefix):]] = value
    return book


def _series_description(found: dict[str, Any] | None) -> dict[str, Any]:
    """A series' key, context, unit and infinity flag, each kept only when it has the right type."""
    found = found or {}
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
