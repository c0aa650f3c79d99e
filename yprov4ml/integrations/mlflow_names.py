"""How yprov4ml's names and values map onto MLflow's, and back, without loss.

MLflow keys allow only ``[/\\w.\\- :]`` and have no contexts; params are text.
A series becomes the key ``<context>/<key>`` (MLflow's UI groups charts by the
part before ``/``); whatever the MLflow form cannot carry exactly — the
original key and context, a typed or ambiguous param value, infinities that
SQL stores turn into ±float max — goes into one artifact, ``NAMES_ARTIFACT``, so
that an import gives back exactly what was exported.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from typing import Any

MAX_KEY = 250        # MLflow's limit on metric, param and tag keys
MAX_PARAM_TEXT = 6000
MAX_TAG_TEXT = 8000
METRICS_PER_BATCH = 1000  # MLflow refuses more in one log_batch
TAGS_PER_BATCH = 100

RUN_ID_TAG = "yprov4ml.run_id"
RANK_TAG = "yprov4ml.rank"
COMPLETE_TAG = "yprov4ml.export_complete"
NAMES_ARTIFACT = "provenance/mlflow_names.json"  # what the keys and text lose: one artifact, not a tag per name
SERIES_TAG = "yprov4ml.series."  # exports of earlier releases kept it in tags: still read on import
PARAM_TAG = "yprov4ml.param."
ALL_RANKS = "all"  # the rank tag of the parent run of a collected distributed run

_BAD = re.compile(r"[^/\w.\- :]")
FLOAT_MAX = 1.7976931348623157e308

STATUS_TO_MLFLOW = {"FINISHED": "FINISHED", "FAILED": "FAILED", "KILLED": "KILLED", "RUNNING": "RUNNING"}
STATUS_FROM_MLFLOW = {**STATUS_TO_MLFLOW, "SCHEDULED": "RUNNING"}


def mlflow_key(name: str) -> str:
    """A key MLflow accepts: bad characters become ``_``, no empty or ``..`` path parts, at most 250 chars."""
    parts = [part for part in _BAD.sub("_", name).split("/") if part not in ("", ".", "..")]
    key = "/".join(parts) or "_"
    key = key[:MAX_KEY].rstrip("/")
    return key if posixpath.normpath(key) == key else "_"


def unique_keys(names: list[str], taken: set[str] | None = None) -> dict[str, str]:
    """name → MLflow key, distinct for distinct names (``-2``, ``-3`` … on collisions).

    ``taken`` (MLflow keys given out before, updated here) keeps keys distinct across calls.
    """
    taken = set() if taken is None else taken
    out = {}
    for name in names:
        base = candidate = mlflow_key(name)
        n = 1
        while candidate in taken:
            n += 1
            candidate = f"{base[: MAX_KEY - 8]}-{n}"
        taken.add(candidate)
        out[name] = candidate
    return out


def param_text(value: Any) -> str:
    """The text MLflow shows for a param: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def param_value(text: str) -> Any:
    """A param read from MLflow: JSON numbers, booleans, lists and objects come back typed, the rest as text."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if not isinstance(value, str) else text


def param_needs_tag(key: str, value: Any, key_in_mlflow: str) -> bool:
    """Whether the MLflow form loses something (a renamed key, a type, a cut text)."""
    text = param_text(value)
    return key != key_in_mlflow or len(text) > MAX_PARAM_TEXT or param_value(text) != value \
        or type(param_value(text)) is not type(value)


def restore_infinity(value: float) -> float:
    """±float max (a SQL store's ±inf) back to ±inf, for series flagged ``infinite``."""
    if value == FLOAT_MAX:
        return math.inf
    if value == -FLOAT_MAX:
        return -math.inf
    return value


def to_ms(seconds: float) -> int:
    """Unix seconds → MLflow's integer milliseconds."""
    return int(round(seconds * 1000))


def filter_for(run_id: str, rank: str) -> str:
    """An MLflow search filter finding the run exported for (run id, rank)."""
    quoted = run_id.replace("\\", "\\\\").replace("'", "\\'")
    return f"tags.`{RUN_ID_TAG}` = '{quoted}' and tags.`{RANK_TAG}` = '{rank}'"
