"""One adapter per workflow manager: what the manager reports → ``yprov4wfs_bridge.events.WorkflowRecorder``.

``snakemake`` (with ``snakemake_plugin``, found by Snakemake as the package
``snakemake_logger_plugin_yprov4wfs``) and ``parsl``. docs/workflow-managers.md
says how to write another.
"""
