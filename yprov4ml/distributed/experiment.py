"""Upstream's ``unify_experiments``: every run of an experiment in one PROV document."""

from __future__ import annotations

from pathlib import Path

from ..storage.layout import rank_documents
from .merge import merge

EXPERIMENT_FILE = "experiment.prov.json"


def unify_experiment(experiment_dir: Path) -> Path:
    """Write ``<experiment>/experiment.prov.json``: each rank document of each finished run as a bundle, with
    one distributed-run activity per run (``prov-merge --force``). Rewritten atomically after every run."""
    documents = [doc for run_dir in sorted(p for p in experiment_dir.iterdir() if p.is_dir())
                 for doc in rank_documents(run_dir)]
    output = experiment_dir / EXPERIMENT_FILE
    merge(documents, output, force=True, progress=False)
    return output
