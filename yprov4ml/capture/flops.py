"""Floating-point operations of a model's forward pass, counted by torch's own ``FlopCounterMode``.

The count is of one forward pass with autograd off, the model in eval mode
(so that a batch-norm layer's running statistics are not moved by the
counting) and put back in the mode it was in. FLOPs are counted as torch
counts them: a multiply-add is two operations.
"""

from __future__ import annotations

from typing import Any, Iterable


def _inputs(batch: Any) -> tuple[tuple, dict]:
    """The forward arguments in a batch: a tensor, a dict of named inputs, or (inputs, targets, ...)."""
    if isinstance(batch, dict):
        return (), batch
    if isinstance(batch, (tuple, list)) and batch:
        return (batch[0],), {}
    return (batch,), {}


def forward_flops(model: Any, batch: Any) -> int:
    """FLOPs of ``model`` on one ``batch``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"FLOPs are counted for a torch.nn.Module, not {type(model).__name__}")
    args, kwargs = _inputs(batch)
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(*args, **kwargs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def epoch_flops(model: Any, data: Iterable[Any], batch_size: int = 256) -> int:
    """FLOPs of one forward pass over ``data``: a DataLoader's batches, or a Dataset's samples in batches."""
    import torch

    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        data = torch.utils.data.DataLoader(data, batch_size=batch_size)
    return sum(forward_flops(model, batch) for batch in data)
