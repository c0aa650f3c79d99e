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


MAX_VECTOR_ELEMENTS = 1 << 24  # elements of one vector-valued point (128 MB): beyond, an artifact is the place
# Keys whose integer vectors are the sample indices a step consumed (upstream's examples log "Indices").
_INDEX_KEYS = re.compile(r"^(?:.*_)?(?:indices|index|idx|ids|sample_ids)\Z", re.IGNORECASE)


def is_sequence(value: object) -> bool:
    """Whether a metric value is a vector: a list or tuple, or an array / tensor of more than one element."""
    if isinstance(value, (list, tuple)):
        return True
    size = getattr(value, "size", None)  # numpy: an int attribute; torch: a method
    if callable(size) and hasattr(value, "numel"):
        return getattr(value, "ndim", 0) > 0 and value.numel() != 1
    return isinstance(size, int) and getattr(value, "ndim", 0) > 0 and size != 1


def _flatten(value: object, key: str) -> tuple[list, list[int]]:
    """(the elements of a nested list / tuple, its shape); a ragged nesting is refused."""
    if not isinstance(value, (list, tuple)):
        return [value], []
    if not value:
        return [], [0]
    parts = [_flatten(item, key) for item in value]
    shape = parts[0][1]
    if any(part[1] != shape for part in parts):
        raise InvalidMetricError(f"metric {key!r}: a vector value must be rectangular (its rows differ in length)")
    return [x for part in parts for x in part[0]], [len(value), *shape]


def as_sequence(value: object, key: str) -> tuple[str, list, list[int]]:
    """A vector-valued point as (kind, flat elements, shape): ``indices`` for an integer vector under a key
    that names sample indices (``indices``, ``sample_idx``, ...), else ``vector`` of floats."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, (list, tuple)):  # numpy array, torch tensor (any device)
        detach = getattr(value, "detach", None)
        if callable(detach):
            value = detach().cpu()
        shape = [int(n) for n in getattr(value, "shape", ())]
        flat = value.reshape(-1).tolist()
    else:
        flat, shape = _flatten(value, key)
    if len(flat) > MAX_VECTOR_ELEMENTS:
        raise InvalidMetricError(f"metric {key!r}: {len(flat)} elements in one point, more than "
                                 f"{MAX_VECTOR_ELEMENTS}; log a file that large with log_artifact")
    if flat and _INDEX_KEYS.match(key) and all(isinstance(x, int) and not isinstance(x, bool) for x in flat):
        if not all(STEP_MIN <= x < STEP_MAX for x in flat):
            raise InvalidMetricError(f"metric {key!r}: a sample index does not fit in 64 bits")
        return "indices", flat, shape
    try:
        return "vector", [float(x) if not isinstance(x, float) else x for x in flat], shape
    except (TypeError, ValueError, OverflowError):
        bad = next((x for x in flat if not isinstance(x, (int, float))), None)
        raise InvalidMetricError(f"metric {key!r}: a vector element {bad!r} ({type(bad).__name__}) is not a "
                                 "number") from None


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
