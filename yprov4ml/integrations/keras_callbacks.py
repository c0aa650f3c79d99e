"""Upstream's Keras callbacks: ``MetricLoggingCallback`` (Keras's logs as metric series) and
``POLLoggingCallback`` (proof-of-learning weight snapshots every few batches).

``model.fit(..., callbacks=[yprov4ml.MetricLoggingCallback(), yprov4ml.POLLoggingCallback("m", model)])``.
Keras 3 with any backend, or tf.keras. Importing this module imports Keras (``yprov4ml`` itself does not:
the names resolve on first use).
"""

from __future__ import annotations

from typing import Any

try:
    import keras
except ImportError:  # tf.keras of TensorFlow 2.x before Keras 3
    from tensorflow import keras  # type: ignore[no-redef]

from ..context import Context


def _context_of(name: str) -> Context:
    """Keras's ``val_`` figures are validation; the others training."""
    return Context.VALIDATION if name.startswith("val_") else Context.TRAINING


class MetricLoggingCallback(keras.callbacks.Callback):
    """Logs Keras's figures after every batch (``log_every_batch``) and/or every epoch (``log_every_epoch``),
    with system and energy figures alongside if asked."""

    def __init__(self, log_every_batch: bool = True, log_every_epoch: bool = False,
                 log_system_metrics: bool = False, log_carbon_metrics: bool = False):
        super().__init__()
        self.log_every_batch = log_every_batch
        self.log_every_epoch = log_every_epoch
        self.log_system_metrics = log_system_metrics
        self.log_carbon_metrics = log_carbon_metrics
        self.current_epoch = 0
        self._batch = 0  # batches since fit started: the step of per-batch points

    def _log(self, logs: dict[str, Any] | None, step: int) -> None:
        from .. import api

        for name, value in (logs or {}).items():
            api.log_metric(name, float(value), _context_of(name), step)
        if self.log_system_metrics:
            api.log_system_metrics(Context.TRAINING, step)
        if self.log_carbon_metrics:
            api.log_carbon_metrics(Context.TRAINING, step)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.log_every_batch:
            self._log(logs, self._batch)
        self._batch += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.log_every_epoch:
            # Per-epoch points go to series of their own when per-batch ones are logged too.
            suffix = "_epoch" if self.log_every_batch else ""
            self._log({f"{k}{suffix}": v for k, v in (logs or {}).items()}, epoch)


class POLLoggingCallback(keras.callbacks.Callback):
    """Every ``log_every_n_steps`` training batches, a proof-of-learning snapshot of ``model_ptr``'s weights
    (``yprov4ml.log_proof_of_learning_step``), with the batch's loss."""

    def __init__(self, model_label: str, model_ptr: Any, log_every_n_steps: int = 5):
        super().__init__()
        if not isinstance(log_every_n_steps, int) or isinstance(log_every_n_steps, bool) or log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be a positive integer, got {log_every_n_steps!r}")
        self.model_label = model_label
        self.model_ptr = model_ptr
        self.log_every_n_steps = log_every_n_steps
        self.current_epoch = 0
        self.step_counter = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        from .. import api

        self.step_counter += 1
        if self.step_counter % self.log_every_n_steps:
            return
        if not logs or "loss" not in logs:
            raise ValueError("POLLoggingCallback needs the batch's loss: compile the model with a loss")
        api.log_proof_of_learning_step(self.model_label, self.model_ptr, float(logs["loss"]), self.step_counter,
                                       step=self.current_epoch, context=Context.TRAINING)
