"""``search_runs``: the runs under a root that match a filter, in an order, from the index."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, overload

from ..errors import FilterSyntaxError, MissingDependencyError, NotARunError
from ..prov.reader import RunView, load_run
from .filter import Field, parse_filter, parse_order, to_sql, value_sql, like
from .index import connect, default_index_path, refresh

OUTPUT_FORMATS = ("list", "pandas")


@dataclass
class RunSummary:
    """What the index knows of one run: enough to list, sort and compare it without reading its files.
    Paths are text (``Path(summary.run_dir)``): thousands of summaries are made per query."""
    run_id: str
    run_dir: str
    prov_path: str
    experiment: str
    status: str
    start_time: str | None
    end_time: str | None
    duration_s: float | None
    user: str
    host: str
    world_size: int
    ranks_found: int
    task_id: str | None = None
    workflow_id: str | None = None
    document: str | None = None  # the document it was read from: its own, or a container holding a copy
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)  # "key@context" → last value

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RunSearchResult(Sequence):
    """The runs a search found, in order: each item a ``RunView`` (read from its files when first asked),
    ``summaries`` what the index holds of them, ``to_pandas()`` a DataFrame; an HTML table in Jupyter."""

    def __init__(self, summaries: list[RunSummary]):
        self.summaries = summaries
        self._views: dict[int, RunView] = {}

    def __len__(self) -> int:
        return len(self.summaries)

    @overload
    def __getitem__(self, index: int) -> RunView: ...

    @overload
    def __getitem__(self, index: slice) -> list[RunView]: ...

    def __getitem__(self, index: int | slice) -> RunView | list[RunView]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"run {index} of a search result that holds {len(self)}")
        if index not in self._views:
            summary = self.summaries[index]
            if not os.path.isfile(summary.prov_path):
                raise NotARunError(f"run {summary.run_id} is known only from its copy in {summary.document}: its "
                                   f"run directory {summary.run_dir} is gone, and a RunView reads the metric files "
                                   f"there; its summary is result.summaries[{index}]")
            self._views[index] = load_run(summary.prov_path)
        return self._views[index]

    def __iter__(self) -> Iterator[RunView]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"RunSearchResult({len(self)} run(s): {', '.join(s.run_id for s in self.summaries[:5])}" + \
            (", ...)" if len(self) > 5 else ")")

    def to_pandas(self) -> Any:
        """A DataFrame, one row per run, MLflow's columns: ``params.NAME``, ``metrics.NAME@CONTEXT``."""
        try:
            import pandas
        except ImportError:
            raise MissingDependencyError("search_runs(output_format='pandas') needs pandas: pip install pandas") from None
        rows = []
        for s in self.summaries:
            row = {k: v for k, v in s.as_json().items() if k not in ("params", "metrics")}
            row.update({f"params.{k}": v for k, v in s.params.items()})
            row.update({f"metrics.{k}": v for k, v in s.metrics.items()})
            rows.append(row)
        return pandas.DataFrame(rows)

    def _repr_html_(self) -> str:
        from .notebook import summaries_html

        return summaries_html(self.summaries)


def search_runs(root: str | os.PathLike, filter: str | None = None, order_by: list[str] | str | None = None,
                max_results: int | None = None, output_format: str = "list",
                index_path: str | os.PathLike | None = None, refresh_index: bool = True) -> Any:
    """The runs under ``root`` that match ``filter`` (MLflow's grammar), in ``order_by`` order (newest first
    by default), at most ``max_results``: a ``RunSearchResult`` of ``RunView``s, or with
    ``output_format="pandas"`` a DataFrame. The index (``ROOT/.yprov4ml/index.sqlite``) is brought up to
    date first unless ``refresh_index=False``.

    >>> search_runs("prov", "params.lr = '0.01' and metrics.loss.min < 0.1", order_by=["metrics.loss"])
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
    if max_results is not None and (not isinstance(max_results, int) or max_results < 1):
        raise ValueError(f"max_results must be a positive whole number, not {max_results!r}")
    root = Path(root).resolve()
    if refresh_index:
        refresh(root, index_path)
    result = RunSearchResult(query(root, filter, order_by, max_results, index_path))
    return result.to_pandas() if output_format == "pandas" else result


def open_index(root: Path, index_path: str | os.PathLike | None) -> sqlite3.Connection:
    """A connection to the index of ``root`` with the filter's functions."""
    con = connect(Path(index_path) if index_path else default_index_path(root))
    con.create_function("yp_like", 3, like, deterministic=True)
    return con


def query(root: Path, filter: str | None, order_by: list[str] | str | None, max_results: int | None,
          index_path: str | os.PathLike | None = None) -> list[RunSummary]:
    """The summaries of the matching runs, from the index as it is."""
    condition, values = to_sql(parse_filter(filter))
    order_sql, order_values = _order(parse_order(order_by))
    con = open_index(root, index_path)
    try:
        sql = ("SELECT r.run_id, r.run_dir, r.prov_path, r.experiment, r.run_status, r.start_time, r.end_time, "
               "r.duration_s, r.user, r.host, r.world_size, "
               "(SELECT COUNT(*) FROM ranks o WHERE o.visible = 1 AND o.run_id = r.run_id AND o.run_dir = r.run_dir), "
               "r.task_id, r.workflow_id, (SELECT d.path FROM documents d WHERE d.id = r.doc), r.params_json, "
               f"r.metrics_json FROM ranks r WHERE r.lead = 1 AND {condition} ORDER BY {order_sql}")
        bound = values + order_values
        if max_results is not None:
            sql += " LIMIT ?"
            bound.append(max_results)
        try:
            rows = con.execute(sql, bound).fetchall()
        except sqlite3.OperationalError as exc:  # e.g. an IN list longer than SQLite binds
            raise FilterSyntaxError(f"filter: SQLite could not run it ({exc}); make the filter shorter") from None
        return [RunSummary(*row[:15], json.loads(row[15]), json.loads(row[16])) for row in rows]
    finally:
        con.close()


def _order(order: list[tuple[Field, bool]]) -> tuple[str, list[Any]]:
    """ORDER BY for the fields (runs without the value last, whatever the direction), then newest first."""
    parts, values = [], []
    for field_, descending in order:
        expression, more = value_sql(field_)
        parts.append(f"{expression} IS NULL, {expression} {'DESC' if descending else 'ASC'}")
        values += more + more
    parts.append("r.start_ms DESC, r.run_id")
    return ", ".join(parts), values
