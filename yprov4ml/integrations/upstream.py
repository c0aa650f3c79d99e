"""Upstream yProv4ML's other directives, for scripts written against its 3.x releases and earlier generations.

Each does here what it does upstream, on this project's run: the run and
artifact directories, ``start_run_ctx``, the execution command.
"""

from __future__ import annotations

import contextlib
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from ..api import _current, end_run, start_run


class MetricsType(str, Enum):
    """Upstream's names for ``start_run(metrics_file_type=...)``."""

    CSV = "csv"
    NETCDF = "netcdf"
    ZARR = "zarr"
    PARQUET = "parquet"


class CompressorType(str, Enum):
    """Upstream's names for ``start_run(use_compressor=...)``: the codec of the netCDF / Zarr / Parquet copies."""

    ZLIB = "zlib"
    ZSTD = "zstd"
    GZIP = "gzip"
    BLOSC = "blosc"
    SNAPPY = "snappy"
    BROTLI = "brotli"
    LZ4 = "lz4"


def register_final_metric(metric_name: str, initial_value: float, fold_operation: Any) -> None:
    """At end_run, fold every point of ``metric_name`` into ``initial_value`` with ``fold_operation``
    (``FoldOperation.ADD``, ``MIN``, ...) and record the result as parameter ``metric_name``."""
    _current("register_final_metric").register_final_metric(metric_name, initial_value, fold_operation)


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


def log_model_memory_footprint(model: Any, model_name: str = "default") -> None:
    """Upstream's memory params of a torch model: ``model_name``, ``total_params``, ``memory_of_model`` (MB of
    its parameters and buffers, at their own precision) and ``total_memory_load_of_model`` (MB with one
    gradient and one optimizer state per trainable parameter, upstream's estimate of training memory)."""
    from ..capture.models import is_torch_module

    if not is_torch_module(model):
        raise TypeError(f"log_model_memory_footprint takes a torch.nn.Module, not {type(model).__name__}")
    run = _current("log_model_memory_footprint")
    params = list(model.parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in params) + \
        sum(b.numel() * b.element_size() for b in model.buffers())
    trainable_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    run.log_params({"model_name": model_name, "total_params": sum(p.numel() for p in params),
                    "memory_of_model": model_bytes / 1e6,
                    "total_memory_load_of_model": (model_bytes + 2 * trainable_bytes) / 1e6})


def log_source_code(path: Any = None, use_git: bool = False) -> Any:
    """Store source code in the run directory, linked in PROV as an input of the run.

    ``path`` is a file or folder (default: the entry script); upstream 3.x's ``log_source_code(True)`` means
    ``use_git``. With ``use_git`` the commit, branch and the diff of the uncommitted changes of ``path`` are
    recorded too (the diff as its own file, ``<name>.uncommitted.patch``).
    """
    from ..capture.source_code import git_facts, source_code_path

    if isinstance(path, bool):  # upstream 3.x: log_source_code(use_git=False) by position
        path, use_git = None, path
    run = _current("log_source_code")
    where = source_code_path(path)
    attributes: dict[str, Any] = {"role": "source code"}
    diff = b""
    if use_git:
        facts, diff = git_facts(where)
        attributes.update(facts)
    entity = run.log_artifact(where, name=f"source code {where.name}", is_input=True, attributes=attributes)
    if entity is not None and diff:  # (None: a rank that does not record)
        with tempfile.TemporaryDirectory() as tmp:
            patch = Path(tmp) / f"{where.name}.uncommitted.patch"
            patch.write_bytes(diff)
            run.log_artifact(patch, name=f"uncommitted changes of {where.name}", is_input=True,
                             attributes={"role": "source code diff", "git_commit": attributes["git_commit"],
                                         "applies_to": entity.path})
    return entity


def log_provenance_documents(create_graph: bool = False, create_svg: bool = False,
                             crate_ro_crate: bool = False) -> list[Path]:
    """Upstream's name for ending the run from a logger (itwinai's): end it and return the files written —
    the rank's PROV-JSON, and its DOT / SVG picture when asked."""
    run = _current("log_provenance_documents")
    path = end_run(create_graph=create_graph, create_svg=create_svg, crate_ro_crate=crate_ro_crate)
    if path is None:  # a rank that does not record
        return []
    picture = Path(run.run_dir) / f"graph.rank{run.rank}.dot"
    extra = [picture] if create_graph or create_svg else []
    if create_svg:
        extra.append(picture.with_suffix(".svg"))
    return [path] + [p for p in extra if p.is_file()]
