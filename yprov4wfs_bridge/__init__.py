"""yprov4wfs_bridge: ML runs recorded by yprov4ml, nested beneath the workflow tasks that ran them.

    from yprov4wfs_bridge import Workflow, build
    with Workflow("pipeline", directory="out") as wf:
        with wf.task("train") as task:
            ...                       # yprov4ml runs here (or in children: mpiexec) attach themselves
    result = build("out")             # bundle.prov.json, graph.dot/svg, crate/
"""

from .bundle import read_bundle, write_bundle
from .crate import CrateOptions, validate_crate
from .graph import MultiLevelGraph, build_graph
from .outputs import BuildResult, build
from .errors import WorkflowError
from .workflow import Agent, Data, Task, Workflow

__all__ = ["Workflow", "Task", "Data", "Agent", "WorkflowError", "build", "BuildResult", "MultiLevelGraph",
           "build_graph", "read_bundle", "write_bundle", "validate_crate", "CrateOptions"]
