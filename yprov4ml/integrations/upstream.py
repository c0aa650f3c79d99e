"""Upstream yProv4ML's other directives, for scripts written against its 3.x releases and earlier generations.

Each does here what it does upstream, on this project's run: the run and
artifact directories, ``start_run_ctx``, the execution command.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from ..api import _current, end_run, start_run


def get_run_dir() -> Path:
    """The active run's directory (``<save dir>/<experiment>/<run id>``)."""
    return Path(_current("get_run_dir").run_dir)


def get_artifacts_dir() -> Path:
    """Where the active run's artifacts of this rank are copied (``<run dir>/artifacts/rank<N>``)."""
    run = _current("get_artifacts_dir")
    return Path(run.run_dir) / "artifacts" / f"rank{run.rank}"


@contextlib.contextmanager
def start_run_ctx(*args: Any, create_graph: bool = False, create_svg: bool = False, **kwargs: Any) -> Iterator[Any]:
    """``start_run`` as a context manager that ends the run with ``end_run(create_graph, create_svg)``.

    A body that raises ends the run FAILED with the error (as ``with start_run(...)`` does).
    """
    run = start_run(*args, **kwargs)
    with run:
        yield run
        if run.is_active:
            end_run(create_graph=create_graph, create_svg=create_svg)


def log_execution_command(cmd: str, path: str | None = None) -> None:
    """Record the command that runs the experiment (param ``execution_command``); ``path``, a file of the
    run's artifacts the command works on, is recorded beside it as ``execution_command_path``."""
    if not isinstance(cmd, str) or not cmd.strip():
        raise ValueError(f"log_execution_command: the command must be a non-empty string, not {cmd!r}")
    run = _current("log_execution_command")
    run.log_param("execution_command", cmd)
    if path is not None:
        run.log_param("execution_command_path", str(get_artifacts_dir() / path))
