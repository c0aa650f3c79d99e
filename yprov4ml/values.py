"""User values checked and converted on the slow path: metric values, steps, timestamps, parameters."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime
from typing import Any

from .errors import ArtifactError, InvalidMetricError

STEP_MIN, STEP_MAX = -(1 << 63), 1 << 63
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")


def as_metric_value(value: object, key: str) -> float:
    """Convert a user's metric value to float, or raise a clear error (slow path only)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int beyond float64 (10**400)
            raise InvalidMetricError(f"metric {key!r}: the integer value does not fit in a float64") from None
    item = getattr(value, "item", None)  # numpy / torch scalars and one-element tensors
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            return as_metric_value(item(), key)
        except (ValueError, RuntimeError):
            pass
    raise InvalidMetricError(
        f"metric {key!r}: value {value!r} ({type(value).__name__}) is not a number; "
        "log a float or int (for a tensor, loss.item())"
    )


def as_step(step: object, key: str) -> int:
    """Validate a step (slow path): an integer that fits in int64."""
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidMetricError(f"metric {key!r}: step {step!r} must be an integer (e.g. the epoch or batch index)")
    value = step.__index__()
    if not STEP_MIN <= value < STEP_MAX:
        raise InvalidMetricError(f"metric {key!r}: step {value} does not fit in 64 bits")
    return value


def as_time(value: object) -> float:
    """A user's timestamp as Unix seconds: a float, or a datetime."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidMetricError(f"timestamp {value!r} must be Unix seconds (float) or a datetime")


def param_value(value: Any) -> Any:
    """Parameters keep their type when JSON has one; numpy/torch scalars become numbers, objects text."""
    if isinstance(value, int) and not isinstance(value, bool) and not STEP_MIN <= value < STEP_MAX:
        return str(value)  # beyond int64: PROV's integer types and most readers stop there; kept exactly as text
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=str))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return param_value(item())
        except (ValueError, RuntimeError):
            pass
    return str(value)  # a transform, an optimizer, ...: its readable description


def same_value(a: Any, b: Any) -> bool:
    """Equal parameter values (NaN equals NaN; 1 is not True)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def checked_source(key: Any, source: Any) -> str:
    """A metric's ``source`` (where its points come from): non-empty text, else InvalidMetricError."""
    if not isinstance(source, str) or not source:
        raise InvalidMetricError(f"metric {key!r}: source {source!r} must be a non-empty string")
    return source


def _is_pathish(value: object) -> bool:
    return isinstance(value, (str, os.PathLike))


def names_existing_file(value: object) -> bool:
    """Whether ``value`` is a path (text or PathLike) to something that exists."""
    return _is_pathish(value) and os.path.exists(value)  # type: ignore[arg-type]


def object_and_name(first: Any, second: Any, what: str, keywords: str) -> tuple[Any, Any]:
    """(object, name) from either order: the paper's ``(object, name)`` or upstream 3.x's ``(name, object)``.

    The object is a model, a dataset or loader, or an existing file; the name is text. Two texts are told
    apart by which one names an existing file; when that does not tell them apart, the call is ambiguous
    and refused, never guessed.
    """
    if second is None or not _is_pathish(first):
        return first, second
    if not _is_pathish(second):
        return second, first  # upstream: (name, object)
    first_exists, second_exists = names_existing_file(first), names_existing_file(second)
    if first_exists != second_exists:
        return (first, second) if first_exists else (second, first)
    if first_exists:
        problem = "both name existing files, so which one is the checkpoint or data cannot be told"
    else:
        problem = "neither is an existing file, and the checkpoint or data file does not exist (write it first)"
    raise ArtifactError(f"{what}({os.fspath(first)!r}, {os.fspath(second)!r}): {problem}. Pass the object itself "
                        f"rather than a path, or name each by keyword: {what}({keywords})")


def checked_attrs(other_attrs: Any) -> dict[str, Any]:
    """Upstream's ``other_attrs``: plain names → JSON-able values (others become their text)."""
    if other_attrs is None:
        return {}
    if not isinstance(other_attrs, dict):
        raise ArtifactError(f"other_attrs must be a dict of name → value, not {type(other_attrs).__name__}")
    attributes = {}
    for key, value in other_attrs.items():
        if not isinstance(key, str) or not _ATTRIBUTE.match(key):
            raise ArtifactError(f"other_attrs key {key!r} must be a plain name (letters, digits, '_', '.', '-')")
        attributes[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return attributes
