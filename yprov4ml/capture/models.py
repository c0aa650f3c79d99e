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


def is_keras_model(obj: object) -> bool:
    """True for a Keras model (Keras 3, tf.keras or tf_keras), told by its class's module: Keras is not imported."""
    return callable(getattr(obj, "save", None)) and any(_keras_module(cls.__module__) for cls in type(obj).__mro__)


def _keras_module(name: str) -> bool:
    root = name.split(".")[0]
    return root in ("keras", "tf_keras") or (root == "tensorflow" and "keras" in name)


def checkpoint_suffix(model: object) -> str:
    """The file suffix a model's checkpoint gets: Keras's own ``.keras``, a file's own, else torch's ``.pt``."""
    if is_keras_model(model):
        return ".keras"
    if isinstance(model, (str, os.PathLike)):
        return Path(model).suffix or ".bin"
    return ".pt"


def describe_model(model: object, detailed: bool = True) -> dict[str, Any]:
    """Parameter counts, memory footprint and layer structure of a torch or Keras model; what a checkpoint
    file is. ``detailed=False`` (upstream's ``log_model_info=False``) gives the class alone."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        return {"model_class": "checkpoint file", "checkpoint_name": path.name,
                "checkpoint_format": path.suffix.lstrip(".") or "unknown"}
    if not detailed:
        return {"model_class": type(model).__qualname__}
    if is_keras_model(model):
        return _describe_keras(model)
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


def _describe_keras(model: Any) -> dict[str, Any]:
    keras = sys.modules.get("keras")
    facts: dict[str, Any] = {"model_class": type(model).__qualname__,
                             "framework": f"keras {getattr(keras, '__version__', '')}".strip()}
    try:  # an unbuilt Keras model has no weights yet: the class is still worth recording
        facts["parameter_count"] = int(model.count_params())
        facts["trainable_parameter_count"] = int(sum(_size(w) for w in model.trainable_weights))
    except (ValueError, AttributeError):
        pass
    facts["layers"] = [f"{layer.name}: {type(layer).__name__}" for layer in getattr(model, "layers", [])]
    return facts


def _size(weight: Any) -> int:
    count = 1
    for dim in weight.shape:
        count *= int(dim)
    return count


def layers_description(model: object) -> list[dict[str, Any]]:
    """Every leaf layer: name, type, parameter count and the shape of each parameter (upstream's
    ``log_model_layers``), for a torch module or a Keras model."""
    if is_keras_model(model):
        return [{"name": layer.name, "type": type(layer).__name__,
                 "parameters": int(sum(_size(w) for w in layer.weights)),
                 "parameter_shapes": {w.path if hasattr(w, "path") else w.name: [int(d) for d in w.shape]
                                      for w in layer.weights}}
                for layer in getattr(model, "layers", [])]
    if not is_torch_module(model):
        raise ArtifactError(f"log_model_layers describes a torch.nn.Module or a Keras model, not a "
                            f"{type(model).__name__}")
    layers = []
    for name, module in model.named_modules():  # type: ignore[attr-defined]
        if not name or any(True for _ in module.children()):
            continue
        own = dict(module.named_parameters(recurse=False))
        layers.append({"name": name, "type": type(module).__name__,
                       "parameters": sum(p.numel() for p in own.values()),
                       "parameter_shapes": {key: list(p.shape) for key, p in own.items()}})
    return layers


def save_model(model: object, target: Path) -> None:
    """Save ``model`` to ``target`` atomically.

    A torch module (or anything with ``state_dict()``) is saved as its state dict
    with ``torch.save``; a Keras model in Keras's own format (``model.save``, which needs
    the ``.keras`` suffix); a path to an existing checkpoint file is copied.
    """
    tmp = temp_sibling(target)
    if is_keras_model(model):
        tmp = tmp.with_name(tmp.name + ".keras")
    try:
        if isinstance(model, (str, os.PathLike)):
            source = Path(model)
            if not source.is_file():
                raise ArtifactError(f"model checkpoint {source} does not exist: save it first or pass the model object")
            shutil.copyfile(source, tmp)
            shutil.copymode(source, tmp)  # a 0600 checkpoint stays 0600
        elif is_keras_model(model):
            model.save(str(tmp))  # type: ignore[attr-defined]
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
                f"cannot save a model of type {type(model).__name__}: pass a torch.nn.Module, a Keras model, "
                "an object with state_dict(), or the path of a checkpoint file"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
