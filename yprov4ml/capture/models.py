"""Model versions: saving a model's state and describing its structure (torch when present)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, MissingDependencyError
from ..storage.files import temp_sibling


def is_torch_module(obj: object) -> bool:
    """True for a torch.nn.Module, without importing torch when the user has not."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def describe_model(model: object) -> dict[str, Any]:
    """Parameter counts, memory footprint and layer structure of a torch module; what a checkpoint file is."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        return {"model_class": "checkpoint file", "checkpoint_name": path.name,
                "checkpoint_format": path.suffix.lstrip(".") or "unknown"}
    if not is_torch_module(model):
        return {"model_class": type(model).__qualname__}
    import torch

    params = list(model.parameters())
    buffers = list(model.buffers())
    layers = [
        f"{name}: {type(module).__name__}"
        for name, module in model.named_modules()
        if name and not any(True for _ in module.children())
    ]
    return {
        "model_class": type(model).__qualname__,
        "framework": f"torch {torch.__version__}",
        "parameter_count": sum(p.numel() for p in params),
        "trainable_parameter_count": sum(p.numel() for p in params if p.requires_grad),
        "memory_bytes": sum(t.numel() * t.element_size() for t in params + buffers),
        "layers": layers,
    }


def save_model(model: object, target: Path) -> None:
    """Save ``model`` to ``target`` atomically.

    A torch module (or anything with ``state_dict()``) is saved as its state dict
    with ``torch.save``; a path to an existing checkpoint file is copied.
    """
    tmp = temp_sibling(target)
    try:
        if isinstance(model, (str, os.PathLike)):
            source = Path(model)
            if not source.is_file():
                raise ArtifactError(f"model checkpoint {source} does not exist: save it first or pass the model object")
            shutil.copyfile(source, tmp)
            shutil.copymode(source, tmp)  # a 0600 checkpoint stays 0600
        elif callable(getattr(model, "state_dict", None)):
            try:
                import torch
            except ImportError:
                raise MissingDependencyError(
                    f"saving a {type(model).__name__}'s state_dict needs torch, which is not installed: "
                    "pip install 'yprov4ml[torch]' (or pass the path of a checkpoint file you saved)") from None
            torch.save(model.state_dict(), tmp)
        else:
            raise ArtifactError(
                f"cannot save a model of type {type(model).__name__}: pass a torch.nn.Module, "
                "an object with state_dict(), or the path of a checkpoint file"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
