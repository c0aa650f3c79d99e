"""Describing a dataset or data loader: samples, batches, shapes, transform."""

from __future__ import annotations

from typing import Any


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
