"""The finding commands of ``yprov4ml``: ``runs --filter`` (with the run list), ``index``, ``lineage`` and ``ui``
(the explorer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def filtered_run_dirs(roots: list[str], expression: str, index_path: str | None) -> list[Path]:
    """The run directories under ``roots`` that match a search filter, from each root's index."""
    from ..search.query import search_runs

    found: list[Path] = []
    for root in roots:
        found += [s.run_dir for s in search_runs(root, expression, index_path=index_path).summaries]
    return found


def _index(args: argparse.Namespace) -> int:
    from ..search.index import as_json, default_index_path, refresh

    if args.rebuild:
        path = Path(args.index) if args.index else default_index_path(Path(args.root).resolve())
        for suffix in ("", "-wal", "-shm"):  # a cache: deleting it loses nothing
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    report = refresh(args.root, args.index)
    print(as_json(report) if args.json else report.summary())
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from ..search.lineage import lineage

    found = lineage(args.target, args.root, depth=args.depth, index_path=args.index)
    print(json.dumps(found.as_json(), indent=2) if args.json else found.render())
    return 0


def _ui(args: argparse.Namespace) -> int:
    from ..explorer.server import serve

    serve(args.root, args.host, args.port)
    return 0


def add_search_parsers(sub: argparse._SubParsersAction) -> None:
    """``index``, ``lineage`` and ``ui``."""
    index = sub.add_parser("index", help="bring the run index of ROOT up to date (ROOT/.yprov4ml/index.sqlite); "
                                          "list the documents that cannot be read")
    index.add_argument("root", help="a directory that holds runs, experiments, merged documents or workflows")
    index.add_argument("--index", help="where the index file lives (default ROOT/.yprov4ml/index.sqlite)")
    index.add_argument("--rebuild", action="store_true", help="delete the index and read every document again")
    index.add_argument("--json", action="store_true", help="machine-readable output")
    index.set_defaults(func=_index)

    line = sub.add_parser("lineage", help="every run, rank and workflow task that used or generated a file "
                                          "(matched by sha256), and what it came from and went into")
    line.add_argument("target", help="a file or folder, or its sha256")
    line.add_argument("root", help="the directory whose runs and workflows to search")
    line.add_argument("--depth", type=int, help="steps upstream and downstream (default: all)")
    line.add_argument("--index", help="where the index file lives (default ROOT/.yprov4ml/index.sqlite)")
    line.add_argument("--json", action="store_true", help="machine-readable output")
    line.set_defaults(func=_lineage)

    ui = sub.add_parser("ui", help="the explorer: a local, read-only web application over ROOT's runs and "
                                   "workflows (runs, a run, a workflow, lineage)")
    ui.add_argument("root", help="the directory whose runs and workflows to show")
    ui.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8855, help="the port (default 8855; 0 picks a free one)")
    ui.set_defaults(func=_ui)
