"""Upstream's final metrics: a value folded over every point of a metric (its sum, its minimum, ...)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Iterable

from ..storage.metric_file import MetricData


class FoldOperation(str, Enum):
    """How ``register_final_metric`` folds a metric's points into one value."""

    ADD = "add"
    SUBTRACT = "subtract"
    MULTIPLY = "multiply"
    MIN = "min"
    MAX = "max"


def checked_fold(operation: Any) -> FoldOperation:
    """A FoldOperation from a member or its name ('min', 'ADD', ...); ValueError naming the choices."""
    try:
        return operation if isinstance(operation, FoldOperation) else FoldOperation(str(operation).lower())
    except ValueError:
        raise ValueError(f"fold operation {operation!r} is not one of "
                         f"{', '.join(op.name for op in FoldOperation)}") from None


def fold(initial: float, operation: FoldOperation, values: Iterable[float]) -> float:
    """``initial`` folded with every value, in order."""
    result = initial
    for value in values:
        if operation is FoldOperation.ADD:
            result += value
        elif operation is FoldOperation.SUBTRACT:
            result -= value
        elif operation is FoldOperation.MULTIPLY:
            result *= value
        elif operation is FoldOperation.MIN:
            result = min(result, value)
        else:
            result = max(result, value)
    return result


def fold_series(initial: float, operation: FoldOperation, series: Iterable[MetricData]) -> tuple[float, int]:
    """The fold over the points of these series (every context of one key), in time order; and the number of
    points folded."""
    points: list[tuple[float, float]] = []
    for data in series:
        points += zip(data.times, data.values)
    points.sort(key=lambda point: point[0])
    return fold(initial, operation, (value for _, value in points)), len(points)
