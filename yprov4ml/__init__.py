"""yprov4ml: W3C PROV provenance for machine-learning runs.

    import yprov4ml as prov4ml
    prov4ml.start_run(prov_user_namespace="www.example.org", experiment_name="mnist")
    prov4ml.log_param("lr", 1e-3)
    prov4ml.log_metric("loss", 0.42, prov4ml.Context.TRAINING, step=1)
    prov4ml.end_run(create_graph=True)
"""

from .version import __version__  # noqa: E402
from .api import (  # noqa: E402
    active_run,
    create_context,
    end_run,
    log_artifact,
    log_carbon_metrics,
    log_context,
    log_current_execution_time,
    log_dataset,
    log_execution_end_time,
    log_execution_start_time,
    log_flops_per_batch,
    log_flops_per_epoch,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    log_proof_of_learning_step,
    log_sample_indices,
    log_system_metrics,
    save_model_version,
    start_run,
)
from .context import Context  # noqa: E402
from .errors import (  # noqa: E402
    ArtifactError,
    DocumentError,
    FilterSyntaxError,
    ForkedProcessError,
    IndexUnavailableError,
    InvalidMetricError,
    MissingDependencyError,
    NotARunError,
    ParamConflictError,
    ProvenanceDirError,
    RunAlreadyActiveError,
    RunNotActiveError,
    YProvError,
)
from .prov.reader import load_run  # noqa: E402
from .capture.final_metrics import FoldOperation  # noqa: E402
from .integrations.upstream import (  # noqa: E402
    CompressorType,
    MetricsType,
    get_artifacts_dir,
    get_run_dir,
    log_execution_command,
    log_model_memory_footprint,
    log_provenance_documents,
    log_source_code,
    register_final_metric,
    start_run_ctx,
)

from .integrations import upstream_paths  # noqa: E402

Contexts = Context  # the name upstream's earlier generations use
upstream_paths.install()  # upstream's module paths (yprov4ml.wrappers.indexed_dataset, ...) resolve here

# Classes that need torch, Keras or Lightning, and the readers of many runs: imported on first use, never by
# ``import yprov4ml`` (the logging path stays light).
_LAZY = {
    "search_runs": "yprov4ml.search.query",
    "RunSearchResult": "yprov4ml.search.query",
    "lineage": "yprov4ml.search.lineage",
    "IndexedDatasetWrapper": "yprov4ml.integrations.indexed_dataset",
    "ProvenanceTrackedFunction": "yprov4ml.integrations.tracked",
    "ProvenanceTrackedModel": "yprov4ml.integrations.tracked",
    "WeightDistributionTrackedModel": "yprov4ml.integrations.tracked",
    "MetricLoggingCallback": "yprov4ml.integrations.keras_callbacks",
    "POLLoggingCallback": "yprov4ml.integrations.keras_callbacks",
    "ProvMLItwinAILogger": "yprov4ml.integrations.itwinai",
    "LoggingItemKind": "yprov4ml.integrations.itwinai",
    "ProvMLLogger": "yprov4ml.integrations.lightning",
    "YProv4MLLogger": "yprov4ml.integrations.lightning",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yprov4ml' has no attribute {name!r}")


# The lazy names stay out of __all__: ``from yprov4ml import *`` must not import torch or Keras.
__all__ = [
    "__version__", "Context", "start_run", "end_run", "active_run", "log_metric", "log_metrics", "log_param",
    "log_params", "log_artifact", "save_model_version", "log_model", "log_dataset",
    "log_current_execution_time", "log_system_metrics", "log_carbon_metrics", "log_execution_start_time",
    "log_execution_end_time", "log_flops_per_batch", "log_flops_per_epoch", "load_run", "Contexts",
    "get_run_dir", "get_artifacts_dir", "start_run_ctx", "log_execution_command", "log_model_memory_footprint",
    "MetricsType", "CompressorType", "FoldOperation", "register_final_metric", "log_source_code", "log_context",
    "create_context", "log_sample_indices", "log_proof_of_learning_step", "log_provenance_documents",
    "YProvError", "RunNotActiveError", "RunAlreadyActiveError", "ParamConflictError", "InvalidMetricError",
    "ArtifactError", "ProvenanceDirError", "NotARunError", "ForkedProcessError", "DocumentError",
    "MissingDependencyError", "FilterSyntaxError", "IndexUnavailableError",
]
