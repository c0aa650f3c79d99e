"""The ``yprov4ml`` command: look at, check and draw recorded runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import DocumentError, NotARunError, YProvError
from .extras import refuse_missing_extra
from ..storage.latest import LATEST, resolve_latest
from ..storage.layout import rank_documents, run_dir_of
from ..version import __version__


def _show(args: argparse.Namespace) -> int:
    from .show import show

    print(show(args.run, rank=args.rank, as_json=args.json))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..prov.validate import validate_file

    failed = 0
    for path in _documents_of(args.files):
        if _is_crate(Path(path)):
            from ..publish.crate_check import profile_of, report_lines, validate_crate

            report = validate_crate(Path(path), args.severity, profile_of(path))
            print("\n".join(report_lines(path, report)), file=sys.stdout if report.passed else sys.stderr)
            failed += not report.passed
            continue
        report = validate_file(path)
        if report.too_big is not None:  # no verdict: says why, and that it is not INVALID
            failed += 1
            print(f"{path}: NOT CHECKED, too big for this check: {report.too_big} (this says nothing of its "
                  "validity)", file=sys.stderr)
            continue
        problems = report.problems() + (_metric_problems(Path(path)) if report.ok else [])
        if not problems:
            print(f"{path}: valid PROV-JSON ({report.json_records} records; prov round-trip and W3C schema pass)")
            if report.undefined_terms:  # a user's own attribute names, or a document of another release
                print(f"  note: {len(report.undefined_terms)} yprov: term(s) not in the vocabulary "
                      f"(`yprov4ml convert --vocabulary`): {', '.join(report.undefined_terms[:20])}")
        else:
            failed += 1
            print(f"{path}: INVALID", file=sys.stderr)
            for problem in problems[:20]:
                print(f"  {problem}", file=sys.stderr)
    return 1 if failed else 0


def _is_crate(path: Path) -> bool:
    return path.suffix == ".zip" or (path / "ro-crate-metadata.json").is_file()


def _documents_of(paths: Sequence[str]) -> list[str]:
    """Files and crates as given; a run or experiment directory stands for the PROV-JSON documents in it."""
    out = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and not _is_crate(path):
            found = sorted({*path.glob("prov.rank*.json"), *path.glob("collection.json"),
                            *path.glob("*/prov.rank*.json"), *path.glob("*/collection.json"),
                            *path.glob("*/*/prov.rank*.json"), *path.glob("*/*/collection.json")})
            runs = {run_dir_of(f) for f in found}  # and their ranks beyond the first thousand
            found = sorted({*found, *(doc for run in runs for doc in rank_documents(run))})
            if not found:
                raise NotARunError(f"{path}: no PROV-JSON document (prov.rankN.json, collection.json) and no "
                                   "ro-crate-metadata.json in it or below it")
            out += [str(f) for f in found]
        else:
            out.append(given)
    return out


def _metric_problems(path: Path) -> list[str]:
    """For a rank document: metric files damaged, missing or holding another count than recorded."""
    from ..prov.reader import DamagedRunWarning, load_run

    if not path.name.startswith("prov.rank"):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedRunWarning)
            return load_run(path).problems
    except NotARunError as exc:
        return [str(exc)]


def _graph(args: argparse.Namespace) -> int:
    from ..prov.decode import checked_schema
    from ..prov.picture import run_picture
    from ..storage.files import read_json
    from ..storage.layout import rank_documents

    given = Path(args.run)
    if given.is_dir() and not rank_documents(given):  # an experiment directory: one picture per run
        runs = sorted(p.parent for p in given.glob("*/prov.rank0.json"))
        if runs and not args.output:
            return max(_graph(argparse.Namespace(**{**vars(args), "run": str(run)})) for run in runs)
    if given.is_dir() and args.rank is None:
        sources = rank_documents(given)  # every rank of the run, each in its own cluster
    else:
        from ..prov.reader import find_prov_file

        sources = [find_prov_file(given, args.rank or 0)]
    documents = []
    for source in sources:
        try:
            documents.append(checked_schema(source, read_json(source)))
        except DocumentError as exc:
            raise NotARunError(str(exc)) from None
    default = sources[0].with_name("graph.dot" if len(sources) > 1 else f"graph.rank{args.rank or 0}.dot")
    out = Path(args.output).with_suffix(".dot") if args.output else default
    made = run_picture(documents, expand_metrics=args.expand_metrics).write(out, svg=args.svg)
    print(out)
    if args.svg:
        if made == out:
            return 1
        print(made)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare, render_table

    result = compare(args.runs, sort_by=args.sort, descending=args.desc, metrics=args.metric)
    if args.json:
        print(json.dumps({"runs": [r.run_id for r in result.runs], "status": [r.status for r in result.runs],
                          "params": result.params, "same_params": result.same_params, "metrics": result.metrics,
                          "groups": result.groups, "notes": result.notes}, indent=2, default=str))
    else:
        print(render_table(result))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plot import plot

    output, notes = plot(args.runs, args.metric, args.output, vs=args.vs, x=args.x)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(output)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(args.runs, args.output, metrics=args.metric))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from .runs_list import list_runs, render_lines

    roots = args.roots
    if args.filter:
        from .cli_search import filtered_run_dirs

        roots = filtered_run_dirs(args.roots, args.filter, args.index)
        if not roots:
            print("[]" if args.json else f"no run matches {args.filter!r}")
            return 0
    lines = list_runs(roots, sort=args.sort, descending=args.desc)
    print(json.dumps([line.as_json() for line in lines], indent=2, default=str) if args.json
          else render_lines(lines))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import recipe

    if args.requirements:
        from ..storage.files import atomic_write_text

        atomic_write_text(Path(args.requirements), recipe(args.run).requirements())
        print(args.requirements)
    if not args.run_it:
        if args.verify or args.venv:
            raise ValueError("--verify and --venv need --run (re-run the recorded command)")
        if not args.requirements:
            print(recipe(args.run).text())
        return 0
    from .rerun import reproduce

    return reproduce(args.run, check=args.verify, rtol=args.rtol, atol=args.atol,
                     venv=Path(args.venv) if args.venv else None)


def _export_mlflow(args: argparse.Namespace) -> int:
    from ..integrations.mlflow_export import export_runs

    for done in export_runs(args.runs, _tracking_uri(args), args.experiment, progress=not args.quiet):
        what = "already there, left as it was" if done.skipped else f"{done.points} metric points"
        print(f"{done.source} -> MLflow run {done.mlflow_run_id} ({what})")
    return 0


def _import_mlflow(args: argparse.Namespace) -> int:
    from ..integrations.mlflow_import import import_runs

    # one progress bar per downloaded file would bury the paths printed here (the user's own setting wins)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for path in import_runs(_tracking_uri(args), args.output, run_ids=args.run_id, experiment=args.experiment):
        print(path)
    return 0


def _tracking_uri(args: argparse.Namespace) -> str:
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ValueError("name the MLflow store: --tracking-uri URI (http://host:port, sqlite:///path.db), "
                         "or set MLFLOW_TRACKING_URI")
    return uri


EXPORT_FORMS = """two forms:
  yprov4ml export RUN --format csv|netcdf|zarr|parquet [-o DIR] [--separator S] [--compressor C]
      each metric series of a run as a file (step, time, value); `yprov4ml export RUN --help` for its options
  yprov4ml export mlflow RUN... [--tracking-uri URI] [--experiment E] [-q]
      runs (ranks as child runs) to MLflow, every point; `yprov4ml export mlflow --help` for its options"""


def _add_mlflow_parsers(sub: argparse._SubParsersAction) -> None:
    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument("--tracking-uri", help="MLflow tracking URI: http(s)://host:port, sqlite:///file.db, or "
                                                 "a file store (default: $MLFLOW_TRACKING_URI)")
    export = sub.add_parser("export", help="send recorded runs to another tracker (mlflow); `export RUN --format "
                                           "csv|netcdf|zarr|parquet` writes their metric series as files",
                            formatter_class=argparse.RawDescriptionHelpFormatter, description=EXPORT_FORMS)
    export_to = export.add_subparsers(dest="target", required=True)
    to_mlflow = export_to.add_parser("mlflow", parents=[tracking], help="runs (ranks as child runs) to MLflow: "
                                     "params, every metric point, tags, artifacts, times, status")
    to_mlflow.add_argument("runs", nargs="+", help="run directories, or an experiment directory")
    to_mlflow.add_argument("--experiment", help="MLflow experiment (default: the run's own experiment name)")
    to_mlflow.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    to_mlflow.set_defaults(func=_export_mlflow)

    imp = sub.add_parser("import", help="turn another tracker's runs (mlflow) into yprov4ml run directories")
    import_from = imp.add_subparsers(dest="source", required=True)
    from_mlflow = import_from.add_parser("mlflow", parents=[tracking], help="MLflow runs as PROV-JSON + metric files")
    which = from_mlflow.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", action="append", help="an MLflow run id (repeat for several)")
    which.add_argument("--experiment", help="every run of this MLflow experiment")
    from_mlflow.add_argument("-o", "--output", required=True, help="directory to write <experiment>/<run>/ into")
    from_mlflow.set_defaults(func=_import_mlflow)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yprov4ml", description="Look at, check and draw yprov4ml runs. "
                                     f"A run may be named EXPERIMENT_DIR/{LATEST}: the newest run there.")
    parser.add_argument("--version", action="version", version=f"yprov4ml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    runs = sub.add_parser("runs", help="one line per run: status, start, duration, ranks, what differs, "
                                        "final metrics")
    runs.add_argument("roots", nargs="+", help="provenance, experiment or run directories")
    runs.add_argument("--sort", default="start", help="start (default), status, run_id, or a metric key[@context]")
    runs.add_argument("--desc", action="store_true", help="newest / largest first")
    runs.add_argument("--filter", help="only the runs that match, in MLflow's grammar: \"params.lr = '0.1' and "
                                       "metrics.loss.min < 0.1 and attributes.status = 'FINISHED'\" (docs/search.md)")
    runs.add_argument("--index", help="with --filter: where the index file lives (default ROOT/.yprov4ml/index.sqlite)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(func=_runs)

    show = sub.add_parser("show", help="summary of a run: params, metrics, artifacts, energy, status")
    show.add_argument("run", help="run directory or prov.rankN.json")
    show.add_argument("--rank", type=int, default=0, help="which rank of the run (default 0)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)

    validate = sub.add_parser("validate", help="check PROV-JSON files (prov round-trip and W3C schema) or "
                                                "RO-Crates (roc-validator, offline)")
    validate.add_argument("files", nargs="+", help="PROV-JSON files, or RO-Crate directories / zip files")
    validate.add_argument("--severity", default="REQUIRED", choices=["REQUIRED", "RECOMMENDED", "OPTIONAL"],
                          help="for crates")
    validate.set_defaults(func=_validate)

    graph = sub.add_parser("graph", help="DOT (and SVG) picture of a run's provenance: the run, its ranks, "
                                          "metric series folded per context")
    graph.add_argument("run", help="run directory or prov.rankN.json")
    graph.add_argument("--rank", type=int, default=None, help="one rank (default: every rank of the run)")
    graph.add_argument("--expand-metrics", action="store_true", help="one node per metric series")
    graph.add_argument("--svg", action="store_true", help="also render SVG with Graphviz")
    graph.add_argument("-o", "--output", help="output path (default: graph.rankN.dot beside the document)")
    graph.set_defaults(func=_graph)

    comp = sub.add_parser("compare", help="params that differ and final metrics of runs, side by side")
    comp.add_argument("runs", nargs="+", help="run directories, or an experiment directory")
    comp.add_argument("--sort", help="sort the runs by this metric (key or key@context)")
    comp.add_argument("--desc", action="store_true", help="largest first")
    comp.add_argument("--metric", action="append", help="only this metric: key, key@context or a glob "
                                                         "(repeat for several; default: all)")
    comp.add_argument("--json", action="store_true", help="machine-readable output")
    comp.set_defaults(func=_compare)

    plot = sub.add_parser("plot", help="PNG/SVG of a metric over steps or time, one curve per run and rank")
    plot.add_argument("runs", nargs="+", help="run directories, or an experiment directory")
    plot.add_argument("--metric", required=True, help="key or key@context")
    plot.add_argument("--vs", help="a second metric, on a second y axis (dashed)")
    plot.add_argument("--x", choices=["step", "time"], default="step",
                      help="x axis: the step (default), or seconds since the series began")
    plot.add_argument("-o", "--output", default="plot.png", help="file name; .png or .svg")
    plot.set_defaults(func=_plot)

    report = sub.add_parser("report", help="a self-contained HTML report of runs (plots, params, provenance), or of "
                                            "a workflow (tasks, status, durations, runs' key metrics, the picture)")
    report.add_argument("runs", nargs="+", help="run directories, or an experiment directory, or one workflow "
                                                "directory (or its bundle.prov.json)")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    report.add_argument("--metric", action="append", help="only this metric: key, key@context or a glob "
                                                           "(repeat for several; default: all)")
    report.set_defaults(func=_report)

    repro = sub.add_parser("reproduce", help="what it takes to re-run a run, from its PROV-JSON alone; re-run "
                                              "it in a fresh directory and check it (exit 0 same, 1 differs, 2 "
                                              "could not run)")
    repro.add_argument("run", help="run directory")
    repro.add_argument("--run", dest="run_it", action="store_true",
                       help="re-run the recorded command on the recorded code, in a fresh directory")
    repro.add_argument("--verify", action="store_true",
                       help="compare every metric point, the params and the data fingerprints with the original")
    repro.add_argument("--rtol", type=float, default=1e-7, help="relative tolerance of --verify (default 1e-7)")
    repro.add_argument("--atol", type=float, default=0.0, help="absolute tolerance of --verify (default 0)")
    repro.add_argument("--venv", help="build a virtual environment here with the recorded package versions")
    repro.add_argument("--requirements", metavar="FILE", help="write the recorded packages as a pip requirements "
                                                              "file (pip install -r FILE)")
    repro.set_defaults(func=_reproduce)

    _add_mlflow_parsers(sub)
    from .cli_publish import add_publish_parsers
    from .cli_search import add_search_parsers

    add_search_parsers(sub)
    add_publish_parsers(sub)

    # Listed for the top-level help; main() hands their arguments to their own parsers.
    sub.add_parser("merge", help="merge rank documents into one PROV-JSON (same as prov-merge)", add_help=False)
    sub.add_parser("recover", help="valid PROV-JSON (status KILLED) for unfinished runs", add_help=False)
    sub.add_parser("pol", help="check a run's proof-of-learning snapshots; --against RUN2 compares two "
                               "trajectories (exit 0 holds, 1 not, 2 cannot check)", add_help=False)
    return parser


def _resolve_latest(args: argparse.Namespace) -> None:
    """``prov/mnist/latest`` becomes the newest run's directory, for every command that takes runs."""
    for name in ("run", "runs", "files", "file", "roots"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, str(resolve_latest(Path(value))))
        elif isinstance(value, list):
            setattr(args, name, [str(resolve_latest(Path(v))) for v in value])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # merge and recover have parsers of their own: everything after the name is theirs, --help included.
    if argv[:1] == ["merge"]:
        from ..distributed.merge import main as merge_main

        return merge_main(argv[1:], prog="yprov4ml merge")
    if argv[:1] == ["export"] and argv[1:2] not in (["mlflow"], ["-h"], ["--help"]):  # a run's series, as files
        from .export import main as export_main

        return export_main(argv[1:])
    if argv[:1] == ["recover"]:
        from .recover import main as recover_main

        return recover_main(argv[1:], prog="yprov4ml recover")
    if argv[:1] == ["pol"]:
        from .pol import main as pol_main

        return pol_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        _resolve_latest(args)
        code = args.func(args)
        sys.stdout.flush()  # a reader that left early is noticed here, not at interpreter exit
        return code
    except BrokenPipeError:  # `yprov4ml show RUN | head -1`: the reader has gone, as with any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as exc:  # an optional part not installed: name the extra that installs it
        return refuse_missing_extra(f"yprov4ml {args.command}", exc)
    except (YProvError, OSError, KeyError, ValueError) as exc:  # bad input: a message, never a traceback
        print(f"yprov4ml {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
