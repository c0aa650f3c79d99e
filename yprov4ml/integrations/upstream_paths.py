"""Upstream's module paths, found here: ``from yprov4ml.wrappers.indexed_dataset import IndexedDatasetWrapper``,
``from prov4ml.loggers.prov4ml_itwinai_logger import ProvMLItwinAILogger``, ...

Upstream 3.x spreads its public classes over modules of its own layout; scripts import them by those
paths. A finder on ``sys.meta_path`` maps each such path to the module of this project that holds the same
classes, so the scripts run unchanged while the code stays in its layers. Nothing is imported until a
script asks for it (the wrappers need torch, the callbacks Keras).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Sequence

# upstream's packages that hold nothing of their own here: empty packages, parents of the modules below
PACKAGES = ("wrappers", "loggers", "datamodel", "provenance")
# upstream path (after "yprov4ml." or "prov4ml.") → module here
ALIASES = {
    "wrappers.indexed_dataset": "yprov4ml.integrations.indexed_dataset",
    "wrappers.tracked_function": "yprov4ml.integrations.tracked",
    "wrappers.tracked_model": "yprov4ml.integrations.tracked",
    "wrappers.tracked_layers": "yprov4ml.integrations.tracked",
    "wrappers.source": "yprov4ml.integrations.tracked",
    "loggers.prov4ml_logger": "yprov4ml.integrations.lightning",
    "loggers.prov4ml_itwinai_logger": "yprov4ml.integrations.itwinai",
    "loggers.itwinai_logger": "yprov4ml.integrations.itwinai",
    "datamodel.attribute_type": "yprov4ml.integrations.itwinai",
    "datamodel.compressor_type": "yprov4ml.integrations.upstream",
    "datamodel.metric_type": "yprov4ml.integrations.upstream",
    "provenance.tf_metrics_logger_callback": "yprov4ml.integrations.keras_callbacks",
    "provenance.tf_pol_callback": "yprov4ml.integrations.keras_callbacks",
}
ROOTS = ("yprov4ml.", "prov4ml.")
_PACKAGES: dict[str, ModuleType] = {}


class _Existing(importlib.abc.Loader):
    """Hands out a module of this project (or, for ``target`` None, an empty package) under the name the
    script asked for."""

    def __init__(self, target: str | None):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if self.target is None:  # one package for both import names: ``prov4ml`` is ``yprov4ml``
            suffix = spec.name.split(".", 1)[1]
            package = _PACKAGES.get(suffix)
            if package is None:
                package = _PACKAGES[suffix] = ModuleType(f"yprov4ml.{suffix}",
                                                         "upstream's package of this name; its modules are aliases")
                package.__path__ = []
            return package
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed when it was imported under its own name."""


class UpstreamPaths(importlib.abc.MetaPathFinder):
    """Finds upstream's module paths (``ALIASES``) under both import names."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        for root in ROOTS:
            name = fullname[len(root):] if fullname.startswith(root) else None
            if name in PACKAGES:
                return importlib.machinery.ModuleSpec(fullname, _Existing(None), is_package=True)
            if name in ALIASES:
                return importlib.machinery.ModuleSpec(fullname, _Existing(ALIASES[name]))
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, UpstreamPaths) for finder in sys.meta_path):
        sys.meta_path.append(UpstreamPaths())
