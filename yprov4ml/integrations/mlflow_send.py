"""Sending a run's parts to MLflow: experiment, tags, params, metric points in batches, files, datasets,
logged models.

Shared by the export of finished runs and the live mirror. What MLflow's keys
and text cannot carry goes into one artifact (``NameBook``), never into one
tag per name that would crowd the run's tags.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..prov.decode import RankDocument, attributes, load_rank_document, prov_type, record_files
from ..storage.files import resolve_inside
from ..storage.layout import run_dir_of
from . import mlflow_names as names


class NameBook:
    """The original key, context and unit of each series, the exact value of each param whose MLflow text
    loses it, and which series had infinities: one JSON artifact of the run (``names.NAMES_ARTIFACT``)."""

    def __init__(self) -> None:
        self.series: dict[str, dict[str, Any]] = {}
        self.params: dict[str, dict[str, Any]] = {}
        self.changed = False

    def describe_series(self, mlflow_key: str, key: str, context: str, unit: str | None, infinite: bool) -> None:
        before = self.series.get(mlflow_key)
        entry = {"key": key, "context": context, **({"unit": unit} if unit else {}),
                 **({"infinite": True} if infinite or (before or {}).get("infinite") else {})}
        if entry != before:
            self.series[mlflow_key] = entry
            self.changed = True

    def keep_param(self, mlflow_key: str, key: str, value: Any) -> None:
        self.params[mlflow_key] = {"key": key, "value": value}
        self.changed = True

    def upload(self, client: Any, mlflow_id: str) -> None:
        """Send the book when something was added since the last upload (it replaces the one before)."""
        if self.changed:
            text = json.dumps({"series": self.series, "params": self.params}, ensure_ascii=False, default=str)
            client.log_text(mlflow_id, text, names.NAMES_ARTIFACT)
            self.changed = False


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


def log_params(client: Any, mlflow_id: str, params: dict[str, Any], book: NameBook,
               taken: set[str] | None = None) -> None:
    """Params as MLflow text; the exact value goes into ``book`` where the text loses it.

    ``taken`` (MLflow param keys used before, updated here) lets a caller send params in several parts.
    """
    from mlflow.entities import Param

    keys = names.unique_keys(sorted(params), taken)
    batch_params = []
    for key in sorted(params):
        value, in_mlflow = params[key], keys[key]
        batch_params.append(Param(in_mlflow, names.param_text(value)[: names.MAX_PARAM_TEXT]))
        if names.param_needs_tag(key, value, in_mlflow):
            book.keep_param(in_mlflow, key, value)
    for start in range(0, len(batch_params), names.TAGS_PER_BATCH):
        client.log_batch(mlflow_id, params=batch_params[start: start + names.TAGS_PER_BATCH])


def send_series(client: Any, mlflow_id: str, series: list[tuple[str, str, str | None, list, list, list]],
                book: NameBook, *, progress: bool = True, keys: dict[str, str] | None = None) -> int:
    """Log every point of each (key, context, unit, steps, times, values) in batches of 1,000; the count sent.

    Each series is described in ``book``. ``keys`` (``<context>/<key>`` → MLflow key, filled here) lets a
    caller send series in several parts: a series already in it keeps its key.
    """
    from mlflow.entities import Metric
    from tqdm import tqdm

    keys = {} if keys is None else keys
    new = [f"{context}/{key}" for key, context, *_ in series if f"{context}/{key}" not in keys]
    keys.update(names.unique_keys(new, set(keys.values())))
    for key, context, unit, _, _, values in series:
        book.describe_series(keys[f"{context}/{key}"], key, context, unit, any(map(math.isinf, values)))
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


def send_record(client: Any, experiment_id: str, mlflow_id: str, document: Path) -> None:
    """A finished rank's record in MLflow: its files, its datasets as dataset inputs, its model versions as
    logged models (the document read once, for all three)."""
    doc = load_rank_document(document)
    _log_files(client, mlflow_id, doc)
    entities = [(prov_type(e), attributes(e)) for e in (doc.data.get("entity") or {}).values()]
    _log_datasets(client, mlflow_id, doc, [a for kind, a in entities if kind == "yprov:Dataset"])
    _log_models(client, experiment_id, mlflow_id, run_dir_of(doc.path).resolve(),
                [a for kind, a in entities if kind == "yprov:ModelVersion"])


def _log_files(client: Any, mlflow_id: str, doc: RankDocument) -> None:
    """Every file of the rank's record, at its place in the run directory (``metrics.rank0.ymetric``,
    ``models/rank0/net.v1.pt``, ``source/rank0/...``), and the PROV-JSON under ``provenance/``.

    With them an import gives back the record itself, not a rebuilding of it. A file the document places
    outside the run directory (logged with ``copy=False``, or a hostile location) is left out.
    """
    base = run_dir_of(doc.path).resolve()
    for path in record_files(doc):
        place = path.relative_to(base)
        if path.is_dir():
            client.log_artifacts(mlflow_id, str(path), place.as_posix())
        else:
            parent = place.parent.as_posix()
            client.log_artifact(mlflow_id, str(path), None if parent in ("", ".") else parent)
    client.log_artifact(mlflow_id, str(doc.path), "provenance")


def _log_datasets(client: Any, mlflow_id: str, doc: RankDocument, datasets: list[dict[str, Any]]) -> None:
    """The rank's datasets as MLflow dataset inputs of the run (MLflow's Dataset column)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [DatasetInput(Dataset(
        name=str(a.get("label") or a.get("prov:label") or "dataset"), digest=str(a.get("sha256") or "")[:36] or "-",
        source_type="yprov4ml", source=json.dumps({"run_id": doc.run_id, "rank": doc.rank, "label": a.get("label")}),
        profile=json.dumps({k: a[k] for k in ("samples", "batch_size", "batches", "sample_shape") if k in a})),
        tags=[InputTag("mlflow.data.context", str(a.get("context") or "training"))]) for a in datasets]
    if inputs:
        client.log_inputs(mlflow_id, datasets=inputs)


def _log_models(client: Any, experiment_id: str, mlflow_id: str, base: Path, models: list[dict[str, Any]]) -> None:
    """The rank's model versions as MLflow logged models with their files (MLflow's Model column).

    A version saved with its MLflow pytorch flavour (``yprov:mlflow_model``) is logged as that MLflow model,
    loadable with ``mlflow.pytorch.load_model("models:/<id>")``, its state-dict checkpoint beside it.
    """
    from mlflow.entities import LoggedModelOutput

    from .mlflow_model_format import is_mlflow_model_folder

    outputs = []
    for a in models:
        location = a.get("prov:location")
        path = resolve_inside(base, location) if isinstance(location, str) else None
        if path is None or not path.is_file():
            continue
        flavour_place = a.get("mlflow_model")
        flavour = resolve_inside(base, flavour_place) if isinstance(flavour_place, str) else None
        flavour = flavour if flavour is not None and is_mlflow_model_folder(flavour) else None
        framework = str(a.get("framework") or "")
        model = client.create_logged_model(
            experiment_id, name=names.mlflow_key(f"{a.get('model_name') or path.stem}-v{a.get('version', 1)}"),
            source_run_id=mlflow_id, model_type=framework.split(" ")[0] or None,
            params={k: str(a[k]) for k in ("framework", "parameter_count", "trainable_parameter_count", "version",
                                           "step", "final") if k in a},
            tags={"yprov4ml.sha256": str(a.get("sha256", "")), "yprov4ml.location": path.relative_to(base).as_posix(),
                  **({"yprov4ml.flavour": "pytorch"} if flavour else {})})
        with tempfile.TemporaryDirectory() as folder:  # MLflow takes a model's files as a folder
            if flavour is not None:
                shutil.copytree(flavour, folder, dirs_exist_ok=True)
            shutil.copy2(path, Path(folder) / path.name)
            client.log_model_artifacts(model.model_id, folder)
        client.finalize_logged_model(model.model_id, "READY")
        step = a.get("step")
        outputs.append(LoggedModelOutput(model.model_id, step if isinstance(step, int) else 0))
    if outputs:
        client.log_outputs(mlflow_id, outputs)
