"""``yprov4ml export RUN --format csv|netcdf|zarr|parquet``: a recorded run's metric series, for other tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import YProvError
from ..storage.export_formats import COMPRESSORS, FORMATS, check_format, export_stem, write_series
from ..storage.layout import rank_documents
from ..storage.names import safe_name


def export_run(run: Path, file_type: str, output: Path | None = None, separator: str = ",",
               compressor: str | None = None) -> list[Path]:
    """Every series of every rank of ``run``, written under ``output/metrics/<context>/`` (default: the run)."""
    from ..prov.reader import load_run
    from .compare import find_runs

    file_type, separator, compressor = check_format(file_type, separator, compressor)
    written = []
    for run_dir in find_runs([run]):
        run_dir = run_dir.parent if run_dir.is_file() else run_dir
        target = output / run_dir.name if output is not None and run_dir != run else (output or run_dir)
        for document in rank_documents(run_dir) or [run_dir]:
            view = load_run(document)
            for (key, context), data in sorted(view.metrics.items()):
                if data.kind == "scalar":  # vectors and sample indices have no step/time/value table
                    stem = export_stem(target, context, data.name or safe_name(key), view.rank)
                    written.append(write_series(data, stem, file_type, separator, compressor))
    return written


def main(argv: Sequence[str] | None = None, prog: str = "yprov4ml export") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Write a run's metric series as CSV, netCDF, Zarr or "
                                     "Parquet (one file per series: step, time, value). `yprov4ml export mlflow` "
                                     "sends runs to MLflow instead.")
    parser.add_argument("run", help="run directory, or an experiment directory")
    parser.add_argument("--format", required=True, choices=list(FORMATS))
    parser.add_argument("--separator", default=",", help="CSV field separator (default ',')")
    parser.add_argument("--compressor", help="; ".join(f"{k}: {', '.join(v)}" for k, v in COMPRESSORS.items() if v))
    parser.add_argument("-o", "--output", help="directory to write metrics/<context>/ into (default: the run)")
    args = parser.parse_args(argv)
    try:
        for path in export_run(Path(args.run), args.format, Path(args.output) if args.output else None,
                               args.separator, args.compressor):
            print(path)
    except (YProvError, OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0
