"""The ``yprov4wfs-bridge`` command: build the bundle, graph and crate of a workflow; validate a crate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from yprov4ml.errors import YProvError
from yprov4ml.tools.extras import refuse_missing_extra
from yprov4ml.version import __version__
from yprov4ml.tools.cli_publish import metadata_options, metadata_from

from .errors import WorkflowError

PROFILES = ("provenance-run-crate-0.5", "workflow-ro-crate-1.0")  # what the workflow crate claims


def _build(args: argparse.Namespace) -> int:
    from .crate import CrateOptions
    from .outputs import build

    options = CrateOptions(reference_over_bytes=args.reference_over_mb * 2**20 if args.reference_over_mb else None)
    metadata = metadata_from(args, Path(args.workflow_dir).absolute())
    result = build(args.workflow_dir, crate=not args.no_crate, svg=not args.no_svg, crate_options=options,
                   metadata=metadata, expand_metrics=args.expand_metrics)
    summary = {"bundle": str(result.bundle), "graph": str(result.picture),
               "crate": str(result.crate) if result.crate else None,
               "runs": sorted({d.run_id for d in result.attachments.documents}),
               "rank_documents": len(result.attachments.documents), "gaps": result.gaps}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key in ("bundle", "graph", "crate"):
            if summary[key]:
                print(f"{key}: {summary[key]}")
        print(f"{summary['rank_documents']} rank documents of {len(summary['runs'])} runs")
        for gap in result.gaps:
            print(f"GAP: {gap}", file=sys.stderr)
    if result.crate and args.validate:
        return max(_report(result.crate, "REQUIRED", profile, args.json) for profile in PROFILES)
    return 0


def _cwl(args: argparse.Namespace) -> int:
    from .managers.cwl import run

    directory = Path(args.directory).absolute()
    result = run(args.workflow, args.job, directory=directory, cwltool=args.cwltool, cwltool_options=args.passthrough,
                 workflow_id=args.workflow_id, name=args.name, build=True, crate=not args.no_crate, svg=not args.no_svg,
                 metadata=metadata_from(args, directory))
    print(f"workflow record: {directory}" + (f" (failed: {', '.join(result.failed_tasks)})"
                                             if result.failed_tasks else ""), file=sys.stderr)
    for gap in result.built.gaps:
        print(f"GAP: {gap}", file=sys.stderr)
    return result.exit_code


def _report(crate: Path, severity: str, profile: str, as_json: bool) -> int:
    from yprov4ml.publish.crate_check import report_lines, validate_crate

    report = validate_crate(crate, severity, profile)
    if as_json:
        print(json.dumps({"crate": str(crate), "profile": report.profile, "passed": report.passed,
                          "severity": report.severity, "issues": report.issues,
                          "known_validator_conflicts": report.known_conflicts,
                          "missing_metadata": report.missing_metadata}, indent=2))
    else:
        print("\n".join(report_lines(crate, report)))
    return 0 if report.passed else 1


def _validate(args: argparse.Namespace) -> int:
    from yprov4ml.publish.crate_check import profile_of

    claimed = profile_of(args.crate)  # a run's own crate is a Process Run Crate: check it as one
    profiles = [args.profile] if args.profile else (PROFILES if claimed == PROFILES[0] else [claimed])
    return max(_report(Path(args.crate), args.severity, profile, args.json) for profile in profiles)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yprov4wfs-bridge", description="Nest yprov4ml runs beneath workflow "
                                     "tasks: multi-level PROV-JSON bundle, graph, RO-Crate.")
    parser.add_argument("--version", action="version", version=f"yprov4wfs-bridge (yprov4ml {__version__})")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", parents=[metadata_options()],
                           help="bundle.prov.json, graph.dot/svg and crate/ for a workflow directory")
    build.add_argument("workflow_dir", help="the workflow's directory (workflow.json or events.jsonl in it)")
    build.add_argument("--no-crate", action="store_true", help="write no RO-Crate")
    build.add_argument("--no-svg", action="store_true", help="write the graph as DOT only (no Graphviz run)")
    build.add_argument("--reference-over-mb", type=float, default=None,
                       help="reference files larger than this in the crate instead of copying them")
    build.add_argument("--validate", action="store_true", help="validate the crate (REQUIRED) afterwards")
    build.add_argument("--expand-metrics", action="store_true",
                       help="draw every metric series as its own node (default: one node per context)")
    build.add_argument("--json", action="store_true", help="machine-readable summary")
    build.set_defaults(func=_build)
    validate = sub.add_parser("validate-crate", help="roc-validator, offline: provenance-run-crate-0.5 and "
                              "workflow-ro-crate-1.0 (WorkflowHub), or --profile")
    validate.add_argument("crate", help="an RO-Crate directory or zip file")
    validate.add_argument("--severity", default="REQUIRED", choices=["REQUIRED", "RECOMMENDED", "OPTIONAL"],
                          help="the lowest severity of requirement checked (default REQUIRED)")
    validate.add_argument("--profile", help="one roc-validator profile, e.g. process-run-crate-0.5")
    validate.add_argument("--json", action="store_true", help="machine-readable report")
    validate.set_defaults(func=_validate)
    cwl = sub.add_parser("cwl", parents=[metadata_options()], help="run a CWL workflow with cwltool, recorded at "
                         "both levels (cwltool's own options after --)")
    cwl.add_argument("workflow", help="the CWL document")
    cwl.add_argument("job", nargs="?", help="its input object (YAML or JSON)")
    cwl.add_argument("--directory", default="provenance", help="where the record, bundle and crate go")
    cwl.add_argument("--cwltool", help="the cwltool to run, from its own environment (default: cwltool on PATH)")
    cwl.add_argument("--workflow-id", help="the record's workflow id (default: from the document's name)")
    cwl.add_argument("--no-crate", action="store_true", help="write no RO-Crate")
    cwl.add_argument("--no-svg", action="store_true", help="write the graph as DOT only (no Graphviz run)")
    cwl.set_defaults(func=_cwl)
    words = list(sys.argv[1:] if argv is None else argv)
    passthrough = words[words.index("--") + 1:] if "--" in words else []
    args = parser.parse_args(words[:words.index("--")] if "--" in words else words)
    if passthrough and args.command != "cwl":
        parser.error(f"'--' and what follows are cwltool's options: only 'cwl' takes them, not {args.command!r}")
    args.passthrough = passthrough
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # an optional part not installed: name the extra that installs it
        return refuse_missing_extra(f"yprov4wfs-bridge {args.command}", exc)
    except (WorkflowError, YProvError, OSError) as exc:  # bad input: a message, never a traceback
        print(f"yprov4wfs-bridge {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
