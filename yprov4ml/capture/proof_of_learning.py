"""Proof of learning: a model's weights at a training step, as a snapshot file and a digest of the weights.

A run that logs snapshots every few steps keeps its training trajectory: each
snapshot (an uncompressed ``.npz`` of the trainable weights, by name) is a
model version derived from the one before it, with the batch, the loss and the
sha256 of the weights themselves. ``yprov4ml pol`` re-hashes the snapshots,
checks the chain, and compares two runs' trajectories step by step.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from ..storage.files import atomic_writer

MAX_SNAPSHOT_BYTES = 1 << 36  # 64 GiB: a snapshot that claims more is not read


def weight_arrays(model: Any) -> list[tuple[str, Any]]:
    """The trainable weights of a torch module or a Keras model, as (name, numpy array), in the model's order."""
    import numpy

    named_parameters = getattr(model, "named_parameters", None)
    if callable(named_parameters):  # torch
        return [(name, p.detach().cpu().numpy()) for name, p in named_parameters() if p.requires_grad]
    weights = getattr(model, "trainable_weights", None)
    if weights is not None:  # Keras (any backend)
        found = []
        for n, variable in enumerate(weights):
            name = getattr(variable, "path", None) or getattr(variable, "name", None) or f"weight_{n}"
            value = variable.numpy() if hasattr(variable, "numpy") else numpy.asarray(variable)
            found.append((f"{n:04d}:{name}", numpy.asarray(value)))
        return found
    raise TypeError(f"proof of learning needs a torch.nn.Module or a Keras model, not {type(model).__name__}")


def weights_digest(arrays: list[tuple[str, Any]]) -> str:
    """sha256 of the weights: each array's name, dtype, shape and bytes, in order."""
    import numpy

    digest = hashlib.sha256()
    for name, array in arrays:
        array = numpy.ascontiguousarray(array)
        digest.update(f"{name}\0{array.dtype.str}\0{list(array.shape)}\0".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def save_snapshot(arrays: list[tuple[str, Any]], target: Path) -> None:
    """Write the weights as an uncompressed ``.npz`` (numpy's own format: no pickle), atomically."""
    import numpy

    with atomic_writer(target) as fh:
        numpy.savez(fh, **{f"w{n}": array for n, (_, array) in enumerate(arrays)},
                    names=numpy.array([name for name, _ in arrays]))


def load_snapshot(path: Path) -> list[tuple[str, Any]]:
    """The (name, array) pairs of a snapshot read from disk, sizes checked before anything is read."""
    import numpy

    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if any(m.compress_type != zipfile.ZIP_STORED for m in members):
            raise ValueError(f"{path}: not a yprov4ml snapshot (its members are compressed)")
        declared = sum(m.file_size for m in members)
        if declared > min(MAX_SNAPSHOT_BYTES, path.stat().st_size):
            raise ValueError(f"{path}: its members claim {declared} bytes, more than the file holds")
    with numpy.load(path, allow_pickle=False) as found:
        names = [str(n) for n in found["names"]] if "names" in found.files else []
        if len(names) + 1 != len(found.files):
            raise ValueError(f"{path}: not a yprov4ml snapshot (its arrays and their names disagree)")
        return [(name, found[f"w{n}"]) for n, name in enumerate(names)]
