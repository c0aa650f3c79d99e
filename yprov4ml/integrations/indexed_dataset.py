"""Upstream's ``IndexedDatasetWrapper``: items come with their index, and each batch's indices are recorded.

``for indices, (x, y) in DataLoader(IndexedDatasetWrapper(dataset), ...)`` as
upstream has it. In addition, when a run is recording in this process, the
indices of every batch the loader fetches are logged as one point of a
sample-index series (``log_sample_indices``): sample-level lineage, one
compact record per step, never one PROV record per sample. Named after the
dataset's ``log_dataset`` label (or ``label=``), it is linked to that dataset
in PROV.

DataLoader worker processes fetch in forked children, which never record:
there, log the batch's ``indices`` yourself (``log_metric("indices", indices,
context, step)`` goes to the same kind of series), or load in the main process.
"""

from __future__ import annotations

import os
from typing import Any

from .. import state
from ..context import Context

try:  # a torch Dataset where torch is installed (it only adds isinstance checks); plain otherwise
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover - the wrapper is for torch's DataLoader
    _Base = object  # type: ignore[misc,assignment]


class IndexedDatasetWrapper(_Base):  # type: ignore[misc,valid-type]
    """A dataset whose items are ``(index, item)``; batches fetched in the recording process are recorded."""

    def __init__(self, dataset: Any, label: str | None = None, context: Context | str | None = None):
        self.dataset = dataset
        self.label = label  # set by log_dataset when not given
        self.context = context

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[int, Any]]:
        """A batch (torch's DataLoader asks for one at a time when the dataset offers it): its items, and
        its indices recorded as the next step of the sample-index series."""
        fetch = getattr(self.dataset, "__getitems__", None)
        items = fetch(indices) if callable(fetch) else [self.dataset[i] for i in indices]
        self._record(indices)
        return list(zip(indices, items))

    def _record(self, indices: list[int]) -> None:
        run = state._active
        if run is None or getattr(run, "pid", None) != os.getpid() or not run.is_active:
            return  # no run, or a DataLoader worker (a forked child never records)
        run.log_sample_indices([int(i) for i in indices], self.context, None, self.label or "indices")

    def __repr__(self) -> str:
        return f"IndexedDatasetWrapper({self.dataset!r}, label={self.label!r})"


def name_wrapped(dataset_or_loader: Any, label: str, context: Any) -> str | None:
    """``log_dataset`` of an indexed dataset (or a loader over one): the wrapper takes the dataset's label and
    context for its sample-index series, unless it was given its own. The series' key, or None."""
    wrapper = getattr(dataset_or_loader, "dataset", None) if not isinstance(dataset_or_loader,
                                                                            IndexedDatasetWrapper) else dataset_or_loader
    if not isinstance(wrapper, IndexedDatasetWrapper):
        return None
    if wrapper.label is None:
        wrapper.label = label
    if wrapper.context is None and context is not None:
        wrapper.context = context
    return wrapper.label
