"""Describing a dataset or data loader: samples, batches, shapes, transform — and fingerprinting its data."""

from __future__ import annotations

import hashlib
from array import array as IndexArray
import os
import sys
from pathlib import Path
from typing import Any

from ..storage.files import tree_size_and_sha256


def _shape_of(item: object) -> Any:
    shape = getattr(item, "shape", None)
    if shape is not None:
        return list(shape)
    if isinstance(item, (tuple, list)):
        return [_shape_of(part) for part in item]
    if isinstance(item, (int, float, bool)):
        return []
    return type(item).__name__


def _sized(obj: object) -> int | None:
    try:
        return len(obj)  # type: ignore[arg-type]
    except TypeError:
        return None


def describe_dataset(obj: object) -> dict[str, Any]:
    """Facts about a torch DataLoader, a map-style dataset, or an array."""
    facts: dict[str, Any] = {}
    dataset = obj
    if hasattr(obj, "dataset") and hasattr(obj, "batch_size"):  # a DataLoader
        dataset = obj.dataset
        facts["loader_class"] = type(obj).__qualname__
        facts["batch_size"] = obj.batch_size
        batches = _sized(obj)
        if batches is not None:
            facts["batches"] = batches
        sampler = getattr(obj, "sampler", None)
        if sampler is not None:
            facts["sampler"] = type(sampler).__name__
        facts["num_workers"] = getattr(obj, "num_workers", 0)
    facts["dataset_class"] = type(dataset).__qualname__
    samples = _sized(dataset)
    if samples is not None:
        facts["samples"] = samples
    if hasattr(dataset, "ndim") and hasattr(dataset, "shape"):  # a numpy array or tensor
        facts["shape"] = list(dataset.shape)
    elif samples and hasattr(dataset, "__getitem__"):
        try:
            facts["sample_shape"] = _shape_of(dataset[0])
        except Exception:  # some datasets cannot be indexed cheaply; the rest still counts
            pass
    transform = getattr(dataset, "transform", None)
    if transform is not None:
        facts["transform"] = repr(transform)
    return facts


MAX_FINGERPRINT_BYTES = 16 << 30  # data held in memory beyond this is described, not hashed


def fingerprint(obj: object) -> dict[str, Any]:
    """sha256 of the data itself: a file or directory, or the tensors and arrays a dataset holds.

    A DataLoader stands for its dataset; a ``TensorDataset`` for its tensors; a
    dataset with ``.data`` / ``.targets`` (torchvision's) for those; a tensor or
    numpy array for itself. Two datasets with the same fingerprint hold the same bytes.
    """
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.exists():
            return {}
        size, digest = tree_size_and_sha256(path)
        return {"sha256": digest, "fingerprint_of": "directory" if path.is_dir() else "file", "size_bytes": size}
    dataset = obj.dataset if hasattr(obj, "dataset") and hasattr(obj, "batch_size") else obj
    arrays = _arrays_of(dataset)
    if not arrays:
        return {}
    views = [_bytes_view(a) for a in arrays]
    if any(v is None for v in views):
        return {}
    total = sum(len(v) for v in views)
    if total > MAX_FINGERPRINT_BYTES:
        return {"fingerprint_skipped": f"{total} bytes in memory, more than {MAX_FINGERPRINT_BYTES}"}
    digest = hashlib.sha256()
    for array, view in zip(arrays, views):
        digest.update(f"{getattr(array, 'dtype', '')}{list(getattr(array, 'shape', []))}\0".encode())
        digest.update(view)
    return {"sha256": digest.hexdigest(), "fingerprint_of": "arrays", "fingerprint_bytes": total}


def _arrays_of(dataset: object, depth: int = 0) -> list[Any]:
    if hasattr(dataset, "shape") and hasattr(dataset, "dtype"):
        return [dataset]
    inner = getattr(dataset, "dataset", None)  # a Subset, an IndexedDatasetWrapper: the data they draw from
    if inner is not None and inner is not dataset and depth < 8:
        arrays = _arrays_of(inner, depth + 1)
        indices = getattr(dataset, "indices", None)  # a Subset's choice of samples is part of its data
        if arrays and indices is not None:
            try:
                arrays = arrays + [IndexArray("q", (int(i) for i in indices))]
            except (TypeError, ValueError, OverflowError):
                return []
        return arrays
    tensors = getattr(dataset, "tensors", None)  # torch.utils.data.TensorDataset
    if isinstance(tensors, (tuple, list)) and tensors:
        return list(tensors)
    held = [getattr(dataset, name) for name in ("data", "targets") if hasattr(getattr(dataset, name, None), "shape")]
    return held


def _bytes_view(array: Any) -> memoryview | None:
    """The array's bytes without a copy where it is already contiguous (torch tensors of any dtype, numpy)."""
    if isinstance(array, IndexArray):  # a Subset's indices
        return memoryview(array).cast("B")
    try:
        if hasattr(array, "detach"):  # torch
            flat = array.detach().cpu().contiguous().reshape(-1)
            return memoryview(flat.view(sys.modules["torch"].uint8).numpy()).cast("B")
        import numpy

        return memoryview(numpy.ascontiguousarray(array)).cast("B")
    except Exception:  # an array type we cannot read as bytes: described, not fingerprinted
        return None
