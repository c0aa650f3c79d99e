"""``yprov4ml pol RUN [--against RUN2]``: check a run's proof-of-learning trajectory, or compare two.

A trajectory is the chain of weight snapshots ``log_proof_of_learning_step`` (or the Keras
``POLLoggingCallback``) recorded: model versions ``<label>_pol`` v1, v2, ..., each derived from the one
before it, each with its batch, loss and the sha256 of the weights. Checking one run re-hashes every
snapshot file and its weights and follows the derivation chain in the PROV record; comparing two runs
pairs their snapshots by batch and says, for each, whether the weights are identical (or within
``--tolerance``, the largest absolute difference of any weight). Exit 0: holds; 1: it does not (the table
says where); 2: it cannot be checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..capture.proof_of_learning import load_snapshot, weights_digest
from ..errors import NotARunError
from ..prov.decode import attributes, prov_type
from ..prov.reader import find_prov_file
from ..storage.files import read_json, resolve_inside, sha256_of

ROLE = "proof-of-learning snapshot"


@dataclass
class Snapshot:
    identifier: str
    label: str
    version: int
    batch: int
    loss: float | None
    weights_sha256: str
    sha256: str
    path: Path | None


@dataclass
class Trajectory:
    run_dir: Path
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)  # label → in version order
    problems: list[str] = field(default_factory=list)


def read_trajectory(run: Path, rank: int = 0) -> Trajectory:
    """The snapshots of every proof-of-learning label of one rank, checked: files, digests and the chain."""
    document = find_prov_file(run, rank)
    data = read_json(document)
    found = Trajectory(document.parent)
    for identifier, element in (data.get("entity") or {}).items():
        attrs = attributes(element)
        if prov_type(element) != "yprov:ModelVersion" or attrs.get("role") != ROLE:
            continue
        location = attrs.get("prov:location")
        path = resolve_inside(found.run_dir, location) if isinstance(location, str) else None
        try:
            snapshot = Snapshot(identifier, str(attrs["model_name"]), int(attrs["version"]), int(attrs["pol_batch"]),
                                attrs.get("pol_loss"), str(attrs["weights_sha256"]), str(attrs["sha256"]), path)
        except (KeyError, TypeError, ValueError) as exc:
            found.problems.append(f"{identifier}: not a readable snapshot record ({type(exc).__name__}: {exc})")
            continue
        found.snapshots.setdefault(snapshot.label, []).append(snapshot)
    derived = {(r.get("prov:generatedEntity"), r.get("prov:usedEntity"))
               for r in (data.get("wasDerivedFrom") or {}).values() if isinstance(r, dict)}
    for label, chain in found.snapshots.items():
        chain.sort(key=lambda s: s.version)
        for before, after in zip(chain, chain[1:]):
            if (after.identifier, before.identifier) not in derived:
                found.problems.append(f"{label}: v{after.version} is not derived from v{before.version} in the record")
            if after.batch <= before.batch and after.version > before.version:
                found.problems.append(f"{label}: v{after.version} is at batch {after.batch}, not after "
                                      f"v{before.version}'s batch {before.batch}")
        for snapshot in chain:
            found.problems += _checked_file(snapshot)
    if not found.snapshots:
        raise NotARunError(f"{document}: no proof-of-learning snapshot in this run "
                           "(log_proof_of_learning_step, or keras POLLoggingCallback, records them)")
    return found


def _checked_file(snapshot: Snapshot) -> list[str]:
    where = f"{snapshot.label} v{snapshot.version} (batch {snapshot.batch})"
    if snapshot.path is None or not snapshot.path.is_file():
        return [f"{where}: its snapshot file is missing or outside the run directory"]
    if sha256_of(snapshot.path) != snapshot.sha256:
        return [f"{where}: {snapshot.path.name} is not the file recorded (sha256 differs)"]
    try:
        digest = weights_digest(load_snapshot(snapshot.path))
    except (OSError, ValueError, KeyError) as exc:
        return [f"{where}: {snapshot.path.name} cannot be read ({exc})"]
    if digest != snapshot.weights_sha256:
        return [f"{where}: the weights in {snapshot.path.name} are not the weights recorded"]
    return []


def compare(first: Trajectory, second: Trajectory, tolerance: float = 0.0) -> list[dict[str, Any]]:
    """Snapshot by snapshot (same label, same batch): identical, within tolerance, or differing."""
    import numpy

    rows = []
    for label in sorted(set(first.snapshots) | set(second.snapshots)):
        theirs = {s.batch: s for s in second.snapshots.get(label, [])}
        ours = {s.batch: s for s in first.snapshots.get(label, [])}
        for batch in sorted(set(ours) | set(theirs)):
            a, b = ours.get(batch), theirs.get(batch)
            row: dict[str, Any] = {"label": label, "batch": batch}
            if a is None or b is None:
                row["verdict"] = "only in " + ("the second run" if a is None else "the first run")
            elif a.weights_sha256 == b.weights_sha256:
                row["verdict"] = "identical"
            else:
                row["max_abs_difference"] = difference = _largest_difference(a, b, numpy)
                row["verdict"] = "within tolerance" if difference is not None and difference <= tolerance \
                    else "differs"
            rows.append(row)
    return rows


def _largest_difference(a: Snapshot, b: Snapshot, numpy: Any) -> float | None:
    try:
        left, right = load_snapshot(a.path), load_snapshot(b.path)  # type: ignore[arg-type]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if [(n, x.shape) for n, x in left] != [(n, x.shape) for n, x in right]:
        return None  # another architecture: no weight-by-weight distance
    return max((float(numpy.max(numpy.abs(x.astype(numpy.float64) - y.astype(numpy.float64)), initial=0.0))
                for (_, x), (_, y) in zip(left, right)), default=0.0)


def main(argv: Sequence[str] | None = None, prog: str = "yprov4ml pol") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Check a run's proof-of-learning snapshots (files, "
                                     "weight digests, derivation chain); with --against, compare two trajectories.")
    parser.add_argument("run", help="run directory (or its prov.rankN.json)")
    parser.add_argument("--against", help="a second run: pair the snapshots by batch and compare the weights")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest absolute weight difference still accepted (default 0: identical)")
    parser.add_argument("--rank", type=int, default=0, help="which rank's snapshots (default 0)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        first = read_trajectory(Path(args.run), args.rank)
        second = read_trajectory(Path(args.against), args.rank) if args.against else None
    except (NotARunError, OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    problems = first.problems + (second.problems if second else [])
    rows = compare(first, second, args.tolerance) if second else []
    failed = bool(problems) or any(r["verdict"] not in ("identical", "within tolerance") for r in rows)
    if args.json:
        print(json.dumps({"holds": not failed, "problems": problems, "comparison": rows,
                          "snapshots": {k: len(v) for k, v in first.snapshots.items()}}))
    else:
        for label, chain in sorted(first.snapshots.items()):
            print(f"{label}: {len(chain)} snapshot(s), batches {chain[0].batch}..{chain[-1].batch}")
        for problem in problems:
            print(f"PROBLEM {problem}")
        for row in rows:
            extra = f" (max |Δw| {row['max_abs_difference']:.3g})" if row.get("max_abs_difference") is not None else ""
            print(f"{row['label']} batch {row['batch']}: {row['verdict']}{extra}")
        print("proof of learning holds" if not failed else "proof of learning does NOT hold")
    return 1 if failed else 0
