"""Upstream 3.x's argument forms of ``log_artifact``, turned into this project's.

Upstream writes ``log_artifact(artifact_name, artifact_path, context, source, step,
log_copy_in_prov_directory, log_copy_subdirectory, is_model, is_input, other_attrs)``;
the paper writes ``log_artifact(path, context, step, timestamp, ...)``. The first
argument tells them apart: an existing file is the paper's path; a name followed by
an existing file is upstream's form. Nothing is guessed beyond that.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import ArtifactError
from ..values import names_existing_file

UPSTREAM_REST = ("step", "log_copy_in_prov_directory", "log_copy_subdirectory", "is_model", "is_input",
                 "other_attrs")
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")


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
    for key, value in (given.get("other_attrs") or {}).items():
        if not isinstance(key, str) or not _ATTRIBUTE.match(key):
            raise ArtifactError(f"other_attrs key {key!r} must be a plain name (letters, digits, '_', '.', '-')")
        attributes[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
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
