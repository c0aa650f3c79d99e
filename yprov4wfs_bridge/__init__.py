"""yprov4wfs_bridge: ML runs recorded by yprov4ml, nested beneath the workflow tasks that ran them.

    from yprov4wfs_bridge import Workflow, build
    with Workflow("pipeline", directory="out") as wf:
        with wf.task("train") as task:
            ...                       # yprov4ml runs here (or in children: mpiexec) attach themselves
    result = build("out")             # bundle.prov.json, graph.dot/svg, crate/

Names are imported on first use: a workflow manager that loads an adapter
(Snakemake loads every installed logger plug-in at start) pays for prov,
networkx and rocrate only when a record is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"read_bundle": "bundle", "write_bundle": "bundle", "CrateOptions": "crate", "validate_crate": "crate",
          "MultiLevelGraph": "graph", "build_graph": "graph", "BuildResult": "outputs", "build": "outputs",
          "WorkflowError": "errors", "Agent": "workflow", "Data": "workflow", "Task": "workflow",
          "Workflow": "workflow", "WorkflowRecorder": "events"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'yprov4wfs_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
