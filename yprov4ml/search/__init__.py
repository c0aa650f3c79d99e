"""Finding runs and following files: the run index, ``search_runs`` and ``lineage``."""
