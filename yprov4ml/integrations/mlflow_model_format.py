"""A torch model version in MLflow's own format (the ``pytorch`` flavour), beside its state-dict checkpoint.

A flavour needs the live ``nn.Module``, which a finished record does not hold, so the folder is written
when the model is saved (``save_model_version``): while the run mirrors to MLflow, or when asked with
``mlflow_format=True``. The export and the mirror then log that folder as the logged model, which
``mlflow.pytorch.load_model("models:/<id>")`` and ``mlflow.pyfunc`` load.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError
from ..storage.files import temp_sibling


class _QuietPickleWarning(logging.Filter):
    """MLflow warns at every pickle-format save; the pickle format is what a module without an example
    input can be saved in, and the warning would repeat at every checkpoint of a training loop."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Pickle" not in record.getMessage()


def save_pytorch_flavour(model: Any, folder: Path) -> Path:
    """Write ``model`` (a torch ``nn.Module``) as an MLflow pytorch model into ``folder``, atomically."""
    try:
        import mlflow.pytorch
        import torch
    except ImportError as missing:
        raise MissingDependencyError(
            f"mlflow_format=True writes MLflow's pytorch flavour, which needs {missing.name}: "
            "pip install 'yprov4ml[mlflow,torch]'") from None
    staging = temp_sibling(folder)
    quiet = _QuietPickleWarning()
    log = logging.getLogger("mlflow.pytorch")
    log.addFilter(quiet)
    try:
        # pip_requirements given: MLflow would otherwise infer them by loading the model in a subprocess
        mlflow.pytorch.save_model(model, str(staging), serialization_format="pickle",
                                  pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        if folder.exists():  # a non-incremental save replaces its earlier folder
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        log.removeFilter(quiet)
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def is_mlflow_model_folder(path: Path) -> bool:
    """True for a folder MLflow can load as a model (it holds an ``MLmodel`` file)."""
    return path.is_dir() and (path / "MLmodel").is_file()
