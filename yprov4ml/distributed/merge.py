"""prov-merge: the rank documents of a run combined into one valid PROV-JSON document.

Each rank document becomes a PROV bundle (``merged:rank-N``) holding its
records unchanged, with its own prefixes, so nothing clashes and ``prov`` never
has to unify two ranks' records. The top level holds the distributed run
activity, one entity per bundle, and a cross-rank summary per metric (per-rank
last/min/max/count and the mean over ranks), derived from each rank's series.

The merge works on the JSON itself — no PROV object model — and streams: each
document is checked in a first pass (JSON, W3C schema, a yprov4ml run
activity) and only its summary kept; the second pass copies each one, as it is
on disk and checked unchanged, into its bundle. Thousands of ranks merge in
bounded memory. Every input is checked before anything is written, and the
output is written atomically: a refused merge leaves no file.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import DocumentError
from ..collectors.energy import summed_totals
from ..prov.decode import RankDocument, checked_schema, rank_document
from ..prov.document import RUN_NAMESPACE, VOCABULARY, qname_json, run_namespace
from ..prov.validate import count_records
from ..storage.files import atomic_writer, read_json_and_bytes
from ..storage.layout import COLLECTION_FILE, rank_documents, run_dir_of
from ..storage.names import safe_part
from .collection import correct_late_ranks, node_totals
from .failures import failure_attributes, first_failure
from .ranks import missing_ranks


class MergeError(DocumentError):
    """An input that cannot be merged; the message names the file and the fix."""


@dataclass
class MergeResult:
    output: Path
    ranks: list[int]
    run_ids: list[str]
    records: int
    metrics: int = 0
    warnings: list[str] = field(default_factory=list)
    late_ranks: dict[str, list[int]] = field(default_factory=dict)  # run directory → ranks its collection missed


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, globs and run directories → the rank documents they name, in order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            ranks = rank_documents(path)
            if not ranks:
                raise MergeError(f"{path}: no prov.rank*.json in this directory; is it a yprov4ml run directory?")
            found += ranks
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text))
            if not matches:
                raise MergeError(f"{text}: the pattern matches no file")
            found += [m for m in matches if m.name != COLLECTION_FILE]  # RUN_DIR/*.json: the ranks, not rank 0's summary
        elif path.is_file() and path.name == COLLECTION_FILE:
            raise MergeError(f"{path}: this is rank 0's collection (a summary that links the rank documents), "
                             f"not a rank document; give the run directory {path.parent} instead")
        elif path.is_file():
            found.append(path)
        else:
            raise MergeError(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise MergeError("nothing to merge: give rank documents, a glob, or a run directory")
    return unique


def _progress(items: list[Path], show: bool | None):
    if show is False or len(items) < 32:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="reading rank documents", unit="doc", disable=None if show is None else not show,
                file=sys.stderr)


@dataclass
class _Checked:
    """A rank document read and checked in the first pass: what the merge needs of it, its bytes let go."""

    doc: RankDocument  # its ``data`` cut down to the prefixes
    sha256: str
    records: int


def _read_checked(path: Path) -> _Checked:
    """One rank document: size-checked, parsed, valid PROV-JSON with a yprov4ml run activity."""
    try:
        data, raw = read_json_and_bytes(path)
    except DocumentError as exc:
        raise MergeError(str(exc)) from None
    try:
        doc = rank_document(path, checked_schema(path, data))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise MergeError(str(exc) if isinstance(exc, DocumentError) else
                         f"{path}: a yprov4ml record in it is malformed ({type(exc).__name__}: {exc})") from None
    records = count_records(data)
    doc.data = {"prefix": data.get("prefix") or {}}
    return _Checked(doc, hashlib.sha256(raw).hexdigest(), records)


def _metric_summaries(docs: list[RankDocument]) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    series: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for doc in docs:
        for key, summary in doc.metrics.items():
            series.setdefault(key, {})[doc.rank] = summary
    return series


def _typed(value: Any) -> Any:
    """A PROV-JSON value for a number (typed, so NaN and infinities survive), or the value itself."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        text = "NaN" if value != value else ("INF" if value == float("inf") else
                                             "-INF" if value == float("-inf") else repr(value))
        return {"$": text, "type": "xsd:double"}
    if isinstance(value, int):
        return {"$": str(value), "type": "xsd:long"}
    return value


def _finite(values: Iterable[Any]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and v == v]


def merge(inputs: Sequence[str | Path], output: str | Path, force: bool = False,
          progress: bool | None = None) -> MergeResult:
    """Merge rank documents (files, globs or run directories) into ``output``.

    Refuses documents of different runs (unless ``force``) and two documents of
    the same rank of the same run; on any refusal nothing is written. Streams: the
    documents are checked one at a time, then copied into the output one at a
    time, so that thousands of ranks merge in bounded memory.
    """
    paths = expand_inputs(inputs)
    output = Path(output)
    if output.resolve() in paths:
        raise MergeError(f"{output}: the output would overwrite one of the inputs; choose another path")
    checked = {path: _read_checked(path) for path in _progress(paths, progress)}
    docs = [c.doc for c in checked.values()]
    run_ids = sorted({d.run_id for d in docs})
    if len(run_ids) > 1 and not force:
        raise MergeError(f"the documents belong to {len(run_ids)} different runs ({', '.join(run_ids[:5])}"
                         f"{', ...' if len(run_ids) > 5 else ''}); merge one run at a time, or pass --force")
    seen: dict[tuple[str, int], Path] = {}
    for doc in docs:
        key = (doc.run_id, doc.rank)
        if key in seen:
            raise MergeError(f"{doc.path} and {seen[key]} are both rank {doc.rank} of run {doc.run_id}; "
                             "give each rank's document once")
        seen[key] = doc.path
    docs.sort(key=lambda d: (d.run_id, d.rank))
    multi = len(run_ids) > 1
    if len({safe_part(r) for r in run_ids}) < len(run_ids):  # ids from files: two must not name one bundle
        raise MergeError(f"two of the run ids {run_ids[:5]} make the same identifier; merge them one at a time")
    merged_ns = f"{run_namespace(run_ids[0])}merged/" if not multi else f"{RUN_NAMESPACE}merged/"
    prefixes = {"merged": merged_ns, "yprov": VOCABULARY, "prov": "http://www.w3.org/ns/prov#",
                "xsd": "http://www.w3.org/2001/XMLSchema#"}
    run_iris = {str(d.data.get("prefix", {}).get("run")) for d in docs}
    summaries = {}
    if not multi and len(run_iris) == 1 and "None" not in run_iris:
        # One run: its namespace at the top level lets the summaries point into the rank bundles.
        prefixes["run"] = run_iris.pop()
        summaries = _metric_summaries(docs)
    top = _top_level(docs, run_ids, multi, summaries, {c.doc.path: c.sha256 for c in checked.values()})
    bundles = [(_bundle_id(d, multi), d.path, checked[d.path].sha256) for d in docs]
    _write_streamed(output, prefixes, bundles, top)
    records = sum(c.records for c in checked.values()) + count_records(top)
    late = {}
    for directory, run_id in sorted({(run_dir_of(d.path), d.run_id) for d in docs}):
        found = correct_late_ranks(directory, run_id, {d.rank: (d.path, d.run, checked[d.path].sha256) for d in docs
                                                       if run_dir_of(d.path) == directory and d.run_id == run_id})
        if found:
            late[str(directory)] = found
    return MergeResult(output, [d.rank for d in docs], run_ids, records, len(summaries), late_ranks=late)


def _bundle_id(doc: RankDocument, multi: bool) -> str:
    return f"merged:{safe_part(doc.run_id)}/rank-{doc.rank}" if multi else f"merged:rank-{doc.rank}"


def _top_level(docs: list[RankDocument], run_ids: list[str], multi: bool,
               summaries: dict[tuple[str, str], dict[int, dict[str, Any]]], digests: dict[Path, str]) -> dict:
    """The records beside the bundles: one entity per bundle, the distributed run (energy per node and in
    total), its collection of rank documents, and a cross-rank summary per metric."""
    out: dict[str, Any] = {"activity": {}, "entity": {}, "wasGeneratedBy": {}, "wasDerivedFrom": {},
                           "hadMember": {}}
    relation_ids = iter(range(1, 1 << 62))

    def relate(kind: str, record: dict[str, Any]) -> None:
        out[kind][f"_:merge{next(relation_ids)}"] = record

    for doc in docs:
        out["entity"][_bundle_id(doc, multi)] = {
            "prov:type": qname_json("prov:Bundle"), "prov:label": f"rank {doc.rank} of run {doc.run_id}",
            "yprov:rank": _typed(doc.rank), "yprov:run_id": doc.run_id, "yprov:status": doc.run.get("status", ""),
            "yprov:node": str(doc.run.get("node") or doc.run.get("host") or ""),
            "prov:location": str(doc.path), "yprov:sha256": digests[doc.path],
        }
    for run_id in run_ids:
        ranks = [d for d in docs if d.run_id == run_id]
        world = max(d.world_size for d in ranks)
        missing_count, first_missing = missing_ranks(world, {d.rank for d in ranks}, most=1024)
        activity_id = f"merged:{safe_part(run_id)}/distributed" if multi else "merged:distributed"
        per_node = node_totals({d.rank: d.run for d in ranks})
        element: dict[str, Any] = {
            "prov:type": qname_json("yprov:DistributedRun"), "prov:label": f"run {run_id} ({len(ranks)} of {world} ranks)",
            "yprov:run_id": run_id, "yprov:world_size": _typed(world), "yprov:ranks_merged": _typed(len(ranks)),
            "yprov:missing_ranks": json.dumps(first_missing), "yprov:missing_count": _typed(missing_count),
            "yprov:nodes": json.dumps(sorted({str(d.run.get("node") or d.run.get("host") or "") for d in ranks})),
            "yprov:energy_by_node": json.dumps(per_node, sort_keys=True),
            **{f"yprov:{name}": _typed(value) for name, value in summed_totals(d.run for d in ranks).items()},
            **{k: _typed(v) for k, v in failure_attributes(first_failure({d.rank: d.run for d in ranks})).items()},
        }
        starts = [d.run["prov:startTime"] for d in ranks if "prov:startTime" in d.run]
        ends = [d.run["prov:endTime"] for d in ranks if "prov:endTime" in d.run]
        if starts:
            element["prov:startTime"] = min(starts)
        if ends:
            element["prov:endTime"] = max(ends)
        out["activity"][activity_id] = element
        collection = f"merged:{safe_part(run_id)}/ranks" if multi else "merged:ranks"
        out["entity"][collection] = {"prov:type": qname_json("prov:Collection"), "prov:label": f"rank documents of {run_id}"}
        relate("wasGeneratedBy", {"prov:entity": collection, "prov:activity": activity_id})
        for d in ranks:
            relate("hadMember", {"prov:collection": collection, "prov:entity": _bundle_id(d, multi)})

    for (key, context), per_rank in sorted(summaries.items()):
        lasts = _finite(s["last"] for s in per_rank.values())
        mins, maxs = _finite(s["min"] for s in per_rank.values()), _finite(s["max"] for s in per_rank.values())
        identifier = f"merged:metric/{safe_part(context)}/{safe_part(per_rank[min(per_rank)]['id'].rsplit('/', 1)[-1])}"
        out["entity"][identifier] = {
            "prov:type": qname_json("yprov:CrossRankMetric"), "prov:label": f"{key} ({context}) over {len(per_rank)} ranks",
            "yprov:key": key, "yprov:context": context, "yprov:ranks": _typed(len(per_rank)),
            "yprov:per_rank": json.dumps({str(r): {k: v for k, v in s.items() if k != "id"}
                                          for r, s in sorted(per_rank.items())}),
            "yprov:mean_last": _typed(statistics.fmean(lasts) if lasts else None),
            "yprov:min": _typed(min(mins) if mins else None), "yprov:max": _typed(max(maxs) if maxs else None),
            "yprov:total_count": _typed(sum(s["count"] for s in per_rank.values())),
        }
        out["entity"][identifier] = {k: v for k, v in out["entity"][identifier].items() if v is not None}
        for rank, s in sorted(per_rank.items()):
            relate("wasDerivedFrom", {"prov:generatedEntity": identifier, "prov:usedEntity": s["id"]})
    return {k: v for k, v in out.items() if v}


def _write_streamed(output: Path, prefixes: dict[str, str], bundles: list[tuple[str, Path, str]],
                    top: dict[str, Any]) -> None:
    """Write the merged document, each rank document copied into its bundle as it is on disk (checked
    unchanged since it was read), into a temporary file renamed over ``output`` once whole."""
    with atomic_writer(output) as out:
        out.write(b'{\n "prefix": ' + json.dumps(prefixes).encode() + b',\n "bundle": {')
        for n, (bundle_id, path, digest) in enumerate(bundles):
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != digest:
                raise MergeError(f"{path} changed while it was being merged; merge again once it is written")
            out.write(b"," if n else b"")
            out.write(b"\n  " + json.dumps(bundle_id).encode() + b": " + raw.strip())
        out.write(b"\n }")
        for kind, records in top.items():
            out.write(b",\n " + json.dumps(kind).encode() + b": " +
                      json.dumps(records, indent=1, ensure_ascii=False).encode())
        out.write(b"\n}\n")


def build_parser(prog: str = "prov-merge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Merge the rank documents of a yprov4ml run into one "
                                     "PROV-JSON document (one bundle per rank, cross-rank metric summaries).")
    parser.add_argument("inputs", nargs="+", help="prov.rankN.json files, glob patterns, or run directories")
    parser.add_argument("-o", "--output", required=True, help="the merged PROV-JSON file to write")
    parser.add_argument("--force", action="store_true", help="merge documents of different runs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "prov-merge") -> int:
    """Console entry point; exit 0 on success, 2 on refused input (nothing written)."""
    args = build_parser(prog).parse_args(argv)
    try:
        result = merge(args.inputs, args.output, force=args.force, progress=False if args.no_progress else None)
    except (MergeError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"output": str(result.output), "ranks": result.ranks, "run_ids": result.run_ids,
                          "records": result.records, "metrics": result.metrics, "late_ranks": result.late_ranks}))
    else:
        print(f"{result.output}: {len(result.ranks)} rank documents of {', '.join(result.run_ids)}, "
              f"{result.records} records, {result.metrics} cross-rank metric summaries")
        for directory, late in result.late_ranks.items():
            print(f"{directory}/collection.json: corrected, ranks {late} came after rank 0 had listed them missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
