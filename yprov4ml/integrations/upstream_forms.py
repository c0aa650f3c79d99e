"""Upstream 3.x's argument forms of ``log_artifact``, turned into this project's.

Upstream writes ``log_artifact(artifact_name, artifact_path, context, source, step,
log_copy_in_prov_directory, log_copy_subdirectory, is_model, is_input, other_attrs)``;
the paper writes ``log_artifact(path, context, step, timestamp, ...)``. The first
argument tells them apart: an existing file is the paper's path; a name followed by
an existing file is upstream's form. Nothing is guessed beyond that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..values import checked_attrs, names_existing_file, object_and_name

UPSTREAM_REST = ("step", "log_copy_in_prov_directory", "log_copy_subdirectory", "is_model", "is_input",
                 "other_attrs")


def artifact_call(path: Any, context: Any, step: Any, timestamp: Any, rest: tuple,
                  options: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """The (positional, keyword) arguments of ``Run.log_artifact`` for a call in either form."""
    options = dict(options)
    if "artifact_path" in options or "artifact_name" in options:  # upstream's keywords
        if path is not None and "artifact_path" in options:
            options["artifact_name"] = options.get("artifact_name", path)
        path, name = options.pop("artifact_path", path), options.pop("artifact_name", None)
        return _upstream(path, name, context, None, step, timestamp, rest, options)
    if rest or (not names_existing_file(path) and names_existing_file(context)):  # (name, path, context, source, step, ...)
        return _upstream(context, path, step, timestamp, None, None, rest, options)
    return (path, context, step, timestamp), options


def _upstream(path: Any, name: Any, context: Any, source: Any, step: Any, timestamp: Any, rest: tuple,
              options: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    if len(rest) > len(UPSTREAM_REST):
        raise TypeError(f"log_artifact takes at most {4 + len(UPSTREAM_REST)} positional arguments")
    given = dict(zip(UPSTREAM_REST, rest))
    for key in UPSTREAM_REST:
        if key in options:
            if key in given:
                raise TypeError(f"log_artifact got two values for {key!r}")
            given[key] = options.pop(key)
    if "source" in options:
        source = options.pop("source")
    step = given.get("step", step)
    attributes = {}
    if source is not None:
        attributes["source"] = str(source)
    if given.get("is_model"):
        attributes["is_model"] = True
    attributes.update(checked_attrs(given.get("other_attrs")))
    subdirectory = given.get("log_copy_subdirectory")
    file_name = os.path.basename(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else None
    if subdirectory and file_name:
        file_name = f"{subdirectory}/{file_name}"
    copy = given.get("log_copy_in_prov_directory")
    keywords = {**options, "name": name if name is not None else options.get("name"),
                "is_input": bool(given.get("is_input", False)),  # a keyword is_input was moved into given
                "copy": options.get("copy", True) if copy is None else bool(copy),
                "attributes": attributes, "file_name": file_name}
    return (path, context, step, timestamp), keywords


@dataclass(frozen=True)
class Form:
    """A directive whose paper and upstream forms differ in order: ``(object, name, *paper)`` or
    ``(name, object, *upstream)``."""

    directive: str
    keywords: str  # how to name both by keyword, for the ambiguity error
    paper: tuple[str, ...]
    upstream: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()  # (upstream keyword, "object" or "name")
    keyword_only: tuple[str, ...] = ()  # options of ours that neither order takes by position


SAVE_MODEL_VERSION = Form("save_model_version", "model=..., model_name=...",
                          ("context", "step", "timestamp"),
                          ("context", "source", "step", "incremental", "is_input", "log_copy_in_prov_directory",
                           "other_attrs"), keyword_only=("mlflow_format",))
LOG_MODEL = Form("log_model", "model=..., model_label=...", ("context", "step"),
                 ("context", "source", "log_model_info", "log_model_layers", "log_copy_in_prov_directory",
                  "is_input", "other_attrs"), (("model_name", "name"),), ("mlflow_format",))
LOG_DATASET = Form("log_dataset", "dataset_or_loader=..., label=...", ("context",),
                   ("context", "source", "log_dataset_info", "other_attrs"),
                   (("dataset_label", "name"), ("dataset", "object")))


def resolve_form(form: Form, first: Any, second: Any, positional: tuple, options: dict[str, Any]
                 ) -> tuple[Any, Any, dict[str, Any]]:
    """(object, name, the other arguments by name) of a call in either form; TypeError for a bad call.

    The order is told by the arguments' types (``values.object_and_name``). In upstream's order a number
    where the ``source`` goes is the step, as upstream's examples pass it (``save_model_version(name,
    model, context, epoch)``). Arguments left as None count as not given.
    """
    options = dict(options)
    for upstream_name, slot in form.aliases:  # upstream's keyword names of the object and the name
        if upstream_name in options:
            value = options.pop(upstream_name)
            if (first if slot == "object" else second) is not None:
                raise TypeError(f"{form.directive} got the {slot} twice ({upstream_name!r} and another): give it once")
            first, second = (value, second) if slot == "object" else (first, value)
    if first is None:
        raise TypeError(f"{form.directive} needs the object to record: {form.directive}({form.keywords})")
    obj, name = object_and_name(first, second, form.directive, form.keywords)
    upstream = obj is not first
    names = form.upstream if upstream else form.paper
    if len(positional) > len(names):
        raise TypeError(f"{form.directive} takes at most {2 + len(names)} positional arguments in "
                        f"{'upstream' if upstream else 'this'} order ({len(positional) + 2} given)")
    values = {key: value for key, value in zip(names, positional) if value is not None}
    if upstream and "source" in values and not isinstance(values["source"], str):
        values.setdefault("step", values.pop("source"))  # an earlier generation's (name, model, context, step)
    allowed = set(form.paper) | set(form.upstream) | set(form.keyword_only)
    for key, value in options.items():
        if key not in allowed:
            raise TypeError(f"{form.directive} got an unexpected keyword argument {key!r}")
        if key in values:
            raise TypeError(f"{form.directive} got two values for {key!r}")
        if value is not None:
            values[key] = value
    return obj, name, values
