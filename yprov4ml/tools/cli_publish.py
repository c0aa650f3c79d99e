"""The publishing commands of ``yprov4ml``: ``crate``, ``card`` and ``convert``; metadata options they share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..publish.metadata import PublicationMetadata, load_metadata, parse_authors


def metadata_options() -> argparse.ArgumentParser:
    """Options naming publication metadata; they win over the metadata file and the environment."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("publication metadata (else [tool.yprov4ml], yprov4ml.toml, YPROV4ML_*)")
    group.add_argument("--metadata", help="a yprov4ml.toml, or a pyproject.toml with [tool.yprov4ml]")
    group.add_argument("--author", action="append", help="'Name|ORCID|Affiliation' (repeat for several)")
    group.add_argument("--license", help="SPDX license id, e.g. CC-BY-4.0")
    group.add_argument("--publisher", help="publishing organisation")
    group.add_argument("--publisher-url", help="its web address")
    group.add_argument("--name", help="name of the workflow or model")
    group.add_argument("--version", dest="work_version", help="its version")
    group.add_argument("--keyword", action="append", help="a keyword (repeat for several)")
    group.add_argument("--url", help="where its code lives (repository)")
    return options


def metadata_from(args: argparse.Namespace, start: Path | None = None) -> PublicationMetadata:
    """The metadata of a command line: its options over the file and the environment."""
    authors = [a for text in args.author for a in parse_authors(text)] if args.author else None
    publisher = {"name": args.publisher, "url": args.publisher_url} if args.publisher else None
    metadata = load_metadata(start, file=args.metadata, authors=authors, license=args.license, publisher=publisher,
                             name=args.name, version=args.work_version, keywords=args.keyword, url=args.url)
    print(f"publication metadata from: {metadata.source}", file=sys.stderr)  # which file, if any, was used
    return metadata


def _crate(args: argparse.Namespace) -> int:
    from ..publish.crate_check import report_lines, validate_crate
    from ..publish.run_crate import build_run_crate

    run = Path(args.run)
    crate = build_run_crate(run, args.output, metadata_from(args, run.absolute()))
    print(crate)
    if args.validate:
        report = validate_crate(crate, args.severity, "process-run-crate-0.5")
        print("\n".join(report_lines(crate, report)))
        return 0 if report.passed else 1
    return 0


def _card(args: argparse.Namespace) -> int:
    from ..publish.card import write_card

    run = Path(args.run)
    print(write_card(run, metadata_from(args, run.absolute()), args.output))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert

    if args.vocabulary:
        return _vocabulary(args)
    if args.file is None or args.to is None:
        args.parser.error("give a PROV-JSON file and --to FORMAT (or --vocabulary for the yprov: vocabulary)")
    print(convert(Path(args.file), args.to, Path(args.output) if args.output else None))
    return 0


def _vocabulary(args: argparse.Namespace) -> int:
    """The yprov: vocabulary as Turtle: on stdout, or in -o FILE."""
    from ..prov.vocabulary import vocabulary_text
    from ..storage.files import atomic_write_bytes

    if args.file is not None or args.to not in (None, "turtle"):
        args.parser.error("--vocabulary prints the vocabulary (Turtle) and takes no FILE or other --to")
    if args.output is None:
        sys.stdout.write(vocabulary_text())
        return 0
    atomic_write_bytes(Path(args.output), vocabulary_text().encode("utf-8"))
    print(args.output)
    return 0


def add_publish_parsers(sub: argparse._SubParsersAction) -> None:
    crate = sub.add_parser("crate", parents=[metadata_options()], help="the run's RO-Crate (Process Run Crate "
                           "0.5): PROV-JSON, metric files, model versions, source snapshot, model card")
    crate.add_argument("run", help="run directory")
    crate.add_argument("-o", "--output", help="crate directory (default: RUN/crate)")
    crate.add_argument("--validate", action="store_true", help="check it with roc-validator (offline)")
    crate.add_argument("--severity", default="REQUIRED", choices=["REQUIRED", "RECOMMENDED", "OPTIONAL"],
                       help="the lowest level of --validate's checks that counts (default REQUIRED)")
    crate.set_defaults(func=_crate)

    card = sub.add_parser("card", parents=[metadata_options()], help="model_card.md (Hugging Face style "
                          "metadata, training data, hyperparameters, results, energy), from the PROV record")
    card.add_argument("run", help="run directory")
    card.add_argument("-o", "--output", help="file to write (default: RUN/model_card.md)")
    card.set_defaults(func=_card)

    convert = sub.add_parser("convert", help="PROV-JSON (a rank document or a bundle) to PROV-N, Turtle/TriG/"
                             "N-Quads or PROV-XML with prov's serializers")
    convert.add_argument("file", nargs="?", help="a PROV-JSON file")
    convert.add_argument("--to", choices=["provn", "turtle", "trig", "nquads", "xml"],
                         help="PROV-N; Turtle, TriG or N-Quads (bundles as named graphs); PROV-XML. All but "
                              "PROV-N need the convert extra")
    convert.add_argument("--vocabulary", action="store_true",
                         help="print the yprov: vocabulary (RDFS/OWL, Turtle) instead: every class and attribute")
    convert.add_argument("-o", "--output", help="output file (default: beside the input, new suffix; "
                                                "--vocabulary: stdout)")
    convert.set_defaults(func=_convert, parser=convert)
