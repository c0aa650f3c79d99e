"""Upstream's tracked wrappers: a function whose results become a metric, and models whose activations or
weight distributions are recorded as the run goes.

- ``ProvenanceTrackedFunction(func, context)``: each call's result is a point of the metric named after the
  function (``source`` too), at step 0, 1, 2, ...
- ``ProvenanceTrackedModel(label, model, context, chunk_size)``: the inputs and outputs of every Linear and
  Conv layer, batch after batch, appended by a background thread to a Zarr store in the run's artifacts
  (``artifacts/rank<N>/<label>.zarr``: ``<layer>/input``, ``<layer>/output``), recorded as an artifact at
  end_run. Needs zarr (``pip install 'yprov4ml[zarr]'``).
- ``WeightDistributionTrackedModel(label, model, context)``: ``log_epoch(epoch)`` logs the mean, std, min,
  max and quartiles of every weight-bearing layer's weights, as metric series ``<label>.<layer>.weight_<stat>``.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import torch

from .. import state
from ..errors import MissingDependencyError, RunNotActiveError
from ..storage.names import safe_name

TRACKED_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
WEIGHT_LAYERS = TRACKED_LAYERS + (torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.BatchNorm1d,
                                  torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
QUEUE_BATCHES = 256  # batches of activations waiting for the writer; a full queue makes the forward pass wait
CLOSE_WAIT_S = 300.0


def _recording_run(what: str) -> Any:
    run = state._active
    if run is None:
        raise RunNotActiveError(f"{what}: no active run. Call yprov4ml.start_run(...) first")
    return run


class ProvenanceTrackedFunction:
    """Calls ``func`` and logs each result as a point of metric ``<func's name>`` in ``context``."""

    def __init__(self, func: Any, context: Any = None):
        self.fn = func
        self.context = context
        self.source = getattr(func, "__name__", None) or type(func).__name__
        self.inc = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ..api import log_metric

        result = self.fn(*args, **kwargs)
        value = result.detach() if torch.is_tensor(result) else result
        log_metric(self.source, value, self.context, self.inc, source=self.source)
        self.inc += 1
        return result


class ProvenanceTrackedModel(torch.nn.Module):
    """``model`` whose Linear / Conv layers' inputs and outputs are kept, batch by batch, in a Zarr store."""

    def __init__(self, model_label: str, model: Any, context: Any = None, chunk_size: int = 64,
                 dtype: str = "float16"):
        super().__init__()
        try:
            import zarr
        except ImportError:
            raise MissingDependencyError("ProvenanceTrackedModel stores activations with zarr: "
                                         "pip install 'yprov4ml[zarr]'") from None
        run = _recording_run("ProvenanceTrackedModel")
        self.model, self.model_name, self.context = model, model_label, context
        self.chunk_size, self.dtype = int(chunk_size), dtype
        self.problems: list[str] = []
        self._arrays: dict[str, Any] = {}
        self._run = run
        self._store_path = None
        if hasattr(run, "artifact_dir"):  # a rank that records (others keep the model as it is)
            self._store_path = run.artifact_dir() / f"{safe_name(model_label)}.zarr"
            self._store_path.parent.mkdir(parents=True, exist_ok=True)
            self._group = zarr.open_group(str(self._store_path), mode="w")
            self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
            self._writer = threading.Thread(target=self._write_loop, name="yprov4ml-activations", daemon=True)
            self._writer.start()
            self._handles = [module.register_forward_hook(self._hook(name or "model"))
                             for name, module in model.named_modules() if isinstance(module, TRACKED_LAYERS)]
            run.add_closer(self.close)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def _hook(self, name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            if inputs and torch.is_tensor(inputs[0]) and torch.is_tensor(output):
                self._queue.put((name, inputs[0].detach(), output.detach()))
        return hook

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            name, inputs, output = item
            try:
                self._append(f"{name}/input", inputs)
                self._append(f"{name}/output", output)
            except Exception as exc:  # one bad layer (a changing shape) must not stop the others
                if name not in "".join(self.problems):
                    self.problems.append(f"layer {name}: {type(exc).__name__}: {exc}")

    def _append(self, path: str, tensor: Any) -> None:
        data = tensor.to("cpu").float().numpy().astype(self.dtype)
        if data.ndim == 0:
            data = data.reshape(1)
        array = self._arrays.get(path)
        if array is None:
            array = self._group.create_array(path, shape=(0, *data.shape[1:]), dtype=self.dtype,
                                             chunks=(self.chunk_size, *data.shape[1:]))
            self._arrays[path] = array
        array.append(data, axis=0)

    def close(self) -> None:
        """Stop recording, finish the store and record it as an artifact of the run (called at end_run)."""
        if self._store_path is None or not self._handles:
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._queue.put(None)
        self._writer.join(CLOSE_WAIT_S)
        attributes: dict[str, Any] = {"role": "layer activations", "tracks_model": self.model_name,
                                      "layers": len({p.rsplit("/", 1)[0] for p in self._arrays}),
                                      "dtype": self.dtype, "format": "zarr"}
        if self.problems:
            attributes["problems"] = "; ".join(self.problems)
        if self._writer.is_alive():
            attributes["problems"] = f"the writer had not finished after {CLOSE_WAIT_S:.0f} s"
        ctx = None if self.context is None else str(getattr(self.context, "name", self.context))
        from ..context import as_context

        self._run.record_written_artifact(self._store_path, f"{self.model_name} activations",
                                          as_context(ctx).name if ctx else None, time.time(), attributes)


class WeightDistributionTrackedModel(torch.nn.Module):
    """``model`` whose weight-bearing layers' weight distributions are logged by ``log_epoch(epoch)``."""

    STATS = ("mean", "std", "min", "max", "p25", "p50", "p75")

    def __init__(self, model_label: str, model: Any, context: Any = None, chunk_size: int = 64):
        super().__init__()
        self.model, self.model_name, self.context = model, model_label, context
        self._layers = {name: module for name, module in model.named_modules()
                        if isinstance(module, WEIGHT_LAYERS) and any(p.requires_grad for p in
                                                                     module.parameters(recurse=False))}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def log_epoch(self, epoch: int) -> dict[str, dict[str, float]]:
        """Log every tracked layer's weight statistics at step ``epoch``; returns them."""
        from ..api import log_metrics

        found: dict[str, dict[str, float]] = {}
        for name, module in self._layers.items():
            weights = [p.detach().float().cpu().reshape(-1) for pname, p in module.named_parameters(recurse=False)
                       if "weight" in pname]
            if not weights:
                continue
            flat = torch.cat(weights)
            quartiles = torch.quantile(flat, torch.tensor([0.25, 0.5, 0.75])) if flat.numel() <= 1 << 24 else \
                torch.sort(flat).values[[flat.numel() // 4, flat.numel() // 2, 3 * flat.numel() // 4]]
            stats = {"mean": flat.mean().item(), "std": flat.std().item() if flat.numel() > 1 else 0.0,
                     "min": flat.min().item(), "max": flat.max().item(), "p25": quartiles[0].item(),
                     "p50": quartiles[1].item(), "p75": quartiles[2].item()}
            found[name] = stats
            log_metrics({f"{self.model_name}.{name}.weight_{stat}": value for stat, value in stats.items()},
                        self.context, epoch)
        return found

    def close(self) -> None:
        """Nothing to finish: every epoch's figures are metric points already."""
