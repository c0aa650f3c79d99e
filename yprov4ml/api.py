"""The module-level directives of the paper: ``prov4ml.start_run(...)``, ``prov4ml.log_metric(...)``, ...

They act on the process's active run. ``log_metric`` is the hot path: one
global read and one method call on top of ``Run.log_metric``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable

from . import state
from .capture.reproducibility import reproduction_save_dir
from .context import Context
from .distributed.noop import NoOpRun
from .distributed.ranks import resolve_ranks
from .distributed.run_id import agree_run_identity
from .errors import RunAlreadyActiveError, RunNotActiveError
from .record import DatasetInfo, FileEntity, ModelVersion
from .run import Run, mirror_uri
from .run_options import RunOptions
from .values import checked_source


def _no_run(directive: str) -> RunNotActiveError:
    return RunNotActiveError(
        f"{directive}: no active run. Call yprov4ml.start_run(...) first "
        "(or use `with yprov4ml.start_run(...) as run:`)."
    )


def _current(directive: str) -> Run | NoOpRun:
    run = state._active
    if run is None:
        raise _no_run(directive)
    return run


def active_run() -> Run | NoOpRun | None:
    """The run this process is recording, or None."""
    return state._active  # type: ignore[return-value]


def _default_experiment() -> str:
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    return Path(script).stem or "experiment"


def start_run(prov_user_namespace: str | None = None, experiment_name: str | None = None,
              provenance_save_dir: str | os.PathLike | None = None, collect_all_processes: bool = False,
              save_after_n_logs: int = 100, rank: int | None = None, *, world_size: int | None = None,
              run_id: str | None = None,
              user: str | None = None, flush_interval_s: float = 5.0,
              system_metrics_interval: float | None = None, energy_country: str | None = None,
              collection_timeout_s: float | None = None, keep_in_clear: Iterable[str] = (),
              mlflow_tracking_uri: str | None = None, metrics_file_type: str | None = None,
              csv_separator: str = ",", use_compressor: Any = None, use_run_id: str | None = None,
              disable_codecarbon: bool = False, unify_experiments: bool = False, track_energy: bool | None = None,
              stage_dir: str | os.PathLike | None = None) -> Run | NoOpRun:
    """Start recording a run and make it the active one.

    ``provenance_save_dir`` (default ``./prov``) gets ``<experiment>/<run_id>/``.
    With several ranks and ``collect_all_processes=False`` only rank 0 records;
    the other ranks get a run that ignores every directive.
    ``system_metrics_interval`` (seconds) starts a background sampler of
    system and GPU figures; ``energy_country`` (ISO 3166 alpha-3) sets the grid
    mix of codecarbon's offline tracker. With ``collect_all_processes=True`` on
    several ranks, rank 0's ``end_run`` waits up to ``collection_timeout_s``
    (default 120 s, or ``$YPROV4ML_COLLECTION_TIMEOUT``) for the other ranks'
    documents and writes ``collection.json``. ``rank`` and ``world_size`` name
    this process's place when no launcher says it (they are checked against MPI's when both are known).
    Secrets are hidden in params, the command line and the environment; ``keep_in_clear`` names keys
    (params, variables, options) that only look secret and are recorded as they are.
    ``mlflow_tracking_uri`` (or ``$YPROV4ML_MLFLOW_TRACKING_URI``) mirrors the run to MLflow as it goes,
    from a background thread (docs/mlflow.md).
    Upstream 3.x's options: ``metrics_file_type`` ('csv', 'netcdf', 'zarr', 'parquet') writes each series
    again in that format at end_run, with ``csv_separator`` and ``use_compressor``; ``use_run_id`` is
    ``run_id``; ``disable_codecarbon`` keeps the energy tracker off (log_carbon_metrics then says so once);
    ``unify_experiments`` rewrites ``<experiment>/experiment.prov.json``, every run of the experiment in one
    document, at each end_run.
    ``track_energy=True`` (or ``$YPROV4ML_ENERGY=1``) starts codecarbon in the background with the run, so
    that the first ``log_carbon_metrics`` has figures (otherwise it starts, in the background, at that call).
    ``stage_dir`` (or ``$YPROV4ML_STAGE_DIR``): each rank writes its files to this node-local directory and
    moves them, each atomically, to the shared run directory at its end_run.
    """
    options = RunOptions.checked(
        save_after_n_logs=save_after_n_logs, flush_interval_s=flush_interval_s,
        system_metrics_interval=system_metrics_interval, keep_in_clear=keep_in_clear, track_energy=track_energy,
        energy_disabled=bool(disable_codecarbon), stage_dir=stage_dir, energy_country=energy_country,
        collect_all_processes=collect_all_processes, collection_timeout_s=collection_timeout_s,
        mlflow_tracking_uri=mlflow_tracking_uri,
        metrics_export=_metrics_export(metrics_file_type, csv_separator, use_compressor))
    if use_run_id is not None:
        if run_id is not None and run_id != use_run_id:
            raise ValueError(f"run_id {run_id!r} and use_run_id {use_run_id!r} disagree: give one of them")
        run_id = use_run_id
    mirror_uri(mlflow_tracking_uri)
    with state.lock:
        current = state.active()
        if current is not None:
            raise RunAlreadyActiveError(
                f"run {current.run_id} is still active: call yprov4ml.end_run() before starting another"
            )
        experiment = experiment_name or _default_experiment()
        ranks = resolve_ranks(rank, world_size, collect_all_processes)
        identity = agree_run_identity(experiment, ranks, run_id, state.runs_started,
                                      timeout_s=options.collection_timeout_s)
        the_id = identity.run_id
        save_dir = reproduction_save_dir() or (provenance_save_dir if provenance_save_dir is not None else "prov")
        if ranks.rank != 0 and not collect_all_processes:
            run: Run | NoOpRun = NoOpRun(the_id, ranks.rank, Path(save_dir).absolute() / experiment / the_id)
        else:
            run = Run(user_namespace=prov_user_namespace, experiment=experiment, save_dir=save_dir,
                      ranks=ranks, identity=identity, user=user, options=options)
        run.unify_experiments = bool(unify_experiments)
        state.activate(run)
        return run


def _metrics_export(file_type: Any, separator: Any, compressor: Any) -> tuple[str, str, str | None] | None:
    """The checked export options. A separator or compressor without a file type means CSV copies, upstream
    3.x's default file type (where upstream always writes them; here they are asked for)."""
    from .storage.export_formats import check_format

    if file_type is None:
        if separator == "," and compressor in (None, False):
            return None
        file_type = "csv"
    return check_format(file_type, separator, compressor)


def finish(run: Run | NoOpRun, status: str = "FINISHED", error: str | None = None,
           create_graph: bool = False, create_svg: bool = False) -> Path | None:
    """End ``run`` with ``status``; it is then no longer the active run (``Run.end`` sees to that)."""
    return run.end(create_graph=create_graph, create_svg=create_svg, status=status, error=error)


def end_run(create_graph: bool = False, create_svg: bool = False, crate_ro_crate: bool = False,
            create_card: bool = False) -> Path | None:
    """End the active run: flush metrics, write the PROV-JSON (and DOT / SVG). Returns its path.

    ``create_card`` writes ``model_card.md`` and ``crate_ro_crate`` the run's RO-Crate (``crate/``) in the run
    directory, on rank 0 once the run is ended (and collected), with the publication metadata of the nearest
    ``yprov4ml.toml`` / ``[tool.yprov4ml]`` and the ``YPROV4ML_*`` variables.
    """
    run = _current("end_run")
    path = finish(run, create_graph=create_graph, create_svg=create_svg)
    if path is None or run.rank != 0:
        return path
    if crate_ro_crate or create_card:
        from .publish.outputs import publish_run

        publish_run(path.parent, crate=crate_ro_crate, card=create_card)
    if run.unify_experiments:
        from .distributed.experiment import unify_experiment

        unify_experiment(path.parent.parent)
    return path


def log_metric(key: str, value: float, context: Context | str | None = None, step: int | None = None,
               timestamp: float | None = None, source: str | None = None) -> None:
    """Append a point to the (key, context) metric series. Cheap: no I/O.

    ``source`` says where the points come from; upstream's positional order (key, value, context, step,
    source, timestamp) works too: a string in fifth place is the source.
    """
    if source is None:
        try:  # the hot path: one attribute read and one call (no None check: the try costs nothing)
            return state._active.log_metric(key, value, context, step, timestamp)
        except AttributeError:
            if state._active is None:
                raise _no_run("log_metric") from None
            raise
    _log_metric_from(key, value, context, step, timestamp, source)


def _log_metric_from(key: str, value: float, context: Any, step: Any, timestamp: Any, source: Any) -> None:
    """log_metric with a source (slow path)."""
    run = _current("log_metric")
    if isinstance(timestamp, str):  # upstream's order: the source came fifth, the timestamp sixth
        timestamp, source = source, timestamp
    checked_source(key, source)  # before the point is taken: nothing half-logged
    run.log_metric(key, value, context, step, timestamp)
    run.note_metric_source(key, context, source)


def log_metrics(metrics: dict[str, float], context: Context | str | None = None, step: int | None = None,
                timestamp: float | None = None) -> None:
    """Log several metrics at one step."""
    _current("log_metrics").log_metrics(metrics, context, step, timestamp)


def log_context(context: Context | str, is_subcontext_of: Context | str | None = None,
                source_of_data: str | None = None) -> None:
    """Declare a context, as part of ``is_subcontext_of`` (nested contexts, as upstream 3.x has them)."""
    _current("log_context").log_context(context, is_subcontext_of, source_of_data)


def create_context(context: Context | str, is_subcontext_of: Context | str | None = None) -> None:
    """Upstream's earlier name of :func:`log_context`."""
    _current("create_context").log_context(context, is_subcontext_of)


def log_param(key: str, value: Any, context: Context | str | None = None, source: str | None = None,
              is_input: bool = False) -> None:
    """Record a parameter (once per key); with ``context``, used by that context's activity (upstream's form)."""
    _current("log_param").log_param(key, value, context, source, is_input)


def log_params(params: dict[str, Any]) -> None:
    """Record several parameters."""
    _current("log_params").log_params(params)


def log_artifact(artifact_path: str | os.PathLike | None = None, context: Context | str | None = None,
                 step: int | None = None, timestamp: float | None = None, *upstream: Any,
                 **options: Any) -> FileEntity | None:
    """Record a file or directory the run used or produced (``is_input=True`` for inputs).

    Upstream 3.x's form works too: ``log_artifact(name, path, context, source, step, log_copy_in_prov_directory,
    log_copy_subdirectory, is_model, is_input, other_attrs)`` — told apart by the first argument, which then
    names no existing file while the second does.
    """
    from .integrations.upstream_forms import artifact_call

    args, keywords = artifact_call(artifact_path, context, step, timestamp, upstream, options)
    return _current("log_artifact").log_artifact(*args, **keywords)


def save_model_version(model: Any = None, model_name: str | None = None, context: Context | str | None = None,
                       step: int | None = None, timestamp: float | None = None, *upstream: Any,
                       **options: Any) -> ModelVersion | None:
    """Save a checkpoint of the model as a new version.

    Upstream 3.x's form works too: ``save_model_version(model_name, model, context, source, step, incremental,
    is_input, log_copy_in_prov_directory, other_attrs)`` — told apart by the arguments' types.
    """
    from .integrations.upstream_forms import SAVE_MODEL_VERSION, resolve_form

    obj, name, values = resolve_form(SAVE_MODEL_VERSION, model, model_name, _given(context, step, timestamp, *upstream),
                                     options)
    return _current("save_model_version").save_model_version(obj, name, **values)


def log_model(model: Any = None, model_label: str | None = None, context: Context | str | None = None,
              step: int | None = None, *upstream: Any, **options: Any) -> ModelVersion | None:
    """Save the final model; ``log_model(model, "name")`` and upstream's ``log_model("name", model, context,
    source, log_model_info, log_model_layers, log_copy_in_prov_directory, is_input, other_attrs)`` both work."""
    from .integrations.upstream_forms import LOG_MODEL, resolve_form

    obj, name, values = resolve_form(LOG_MODEL, model, model_label, _given(context, step, *upstream), options)
    return _current("log_model").log_model(obj, name, **values)


def log_dataset(dataset_or_loader: Any = None, label: str | None = None, context: Context | str | None = None,
                *upstream: Any, **options: Any) -> DatasetInfo | None:
    """Record a dataset or DataLoader (size, batches, shapes, transform); upstream's ``log_dataset(dataset_label,
    dataset, context, source, log_dataset_info, other_attrs)`` works too."""
    from .integrations.upstream_forms import LOG_DATASET, resolve_form

    obj, name, values = resolve_form(LOG_DATASET, dataset_or_loader, label, _given(context, *upstream), options)
    return _current("log_dataset").log_dataset(obj, name, **values)


def _given(*positional: Any) -> tuple:
    """The positional arguments up to the last one given (not None)."""
    end = len(positional)
    while end and positional[end - 1] is None:
        end -= 1
    return positional[:end]


def log_current_execution_time(label: str, context: Context | str | None = None,
                               step: int | None = None) -> float | None:
    """Log the seconds since the run started as metric ``label``."""
    return _current("log_current_execution_time").log_current_execution_time(label, context, step)


def log_system_metrics(context: Context | str | None = None, step: int | None = None) -> None:
    """Log CPU, memory, disk and GPU figures as metric series."""
    _current("log_system_metrics").log_system_metrics(context, step)


def log_flops_per_batch(label: str, model: Any, batch: Any, context: Context | str | None = None,
                        step: int | None = None) -> int | None:
    """Log the FLOPs of ``model``'s forward pass on ``batch`` (``torch.utils.flop_counter``) as metric ``label``."""
    return _current("log_flops_per_batch").log_flops_per_batch(label, model, batch, context, step)


def log_flops_per_epoch(label: str, model: Any, dataset: Any, context: Context | str | None = None,
                        step: int | None = None) -> int | None:
    """Log the FLOPs of one forward pass over ``dataset`` (DataLoader or Dataset) as metric ``label``."""
    return _current("log_flops_per_epoch").log_flops_per_epoch(label, model, dataset, context, step)


def log_carbon_metrics(context: Context | str | None = None, step: int | None = None) -> None:
    """Log energy, emissions and power from codecarbon's offline tracker (started on first call)."""
    _current("log_carbon_metrics").log_carbon_metrics(context, step)


def log_execution_start_time(label: str = "execution") -> None:
    """Start a named timer."""
    _current("log_execution_start_time").log_execution_start_time(label)


def log_execution_end_time(label: str = "execution", context: Context | str | None = None,
                           step: int | None = None) -> float | None:
    """Log the seconds since ``log_execution_start_time(label)`` as ``<label>_time_s``."""
    return _current("log_execution_end_time").log_execution_end_time(label, context, step)


def log_sample_indices(indices: Any, context: Context | str | None = None, step: int | None = None,
                       label: str = "indices") -> None:
    """Record which samples (dataset indices) a step consumed: one compact point of sample-level lineage.

    ``IndexedDatasetWrapper`` does it for every batch it fetches in this process; ``log_metric("indices",
    tensor_of_ints, ...)`` comes here too.
    """
    _current("log_sample_indices").log_sample_indices(indices, context, step, label)


def log_proof_of_learning_step(model_label: str, model: Any, loss: float, batch: int, step: int | None = None,
                               context: Context | str | None = None) -> ModelVersion | None:
    """A proof-of-learning snapshot of ``model``'s weights at training batch ``batch`` (``yprov4ml pol``
    checks the trajectory later)."""
    return _current("log_proof_of_learning_step").log_proof_of_learning_step(model_label, model, loss, batch,
                                                                             step, context)
