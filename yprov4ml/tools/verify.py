"""Is a re-run the same as its original? Every metric point within tolerance, the same data, the same params.

A difference is what makes the verdict "differs" (exit 1 of ``reproduce
--verify``); a note is worth saying but decides nothing (a package version,
an unseeded generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..prov.reader import RunView
from .reproduce import recorded_packages


@dataclass
class Difference:
    kind: str    # metric, samples, data, param, status
    what: str    # the metric, dataset or param it is about
    detail: str

    def row(self) -> str:
        return f"{self.kind:<8} {self.what:<32} {self.detail}"


@dataclass
class Verification:
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared_points: int = 0

    @property
    def reproduced(self) -> bool:
        return not self.differences

    def table(self) -> str:
        lines = [f"{'kind':<8} {'what':<32} detail"] + [d.row() for d in self.differences]
        return "\n".join(lines)


def close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Equal within tolerance; NaN equals NaN, an infinity only itself; vectors element by element."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            all(close(x, y, rtol, atol) for x, y in zip(a, b))
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def verify(original: RunView, again: RunView, rtol: float = 1e-7, atol: float = 0.0) -> Verification:
    """Compare a re-run with its original, rank by rank."""
    result = Verification()
    if again.status != "FINISHED":
        result.differences.append(Difference("status", "run", f"the re-run ended {again.status}: {again.error or ''}"))
    _params(original, again, result)
    _metrics(original, again, rtol, atol, result)
    _samples(original, again, result)
    _data(original, again, result)
    _notes(original, again, result)
    return result


def _params(original: RunView, again: RunView, result: Verification) -> None:
    for key in sorted(set(original.params) | set(again.params)):
        before, after = original.params.get(key, "(absent)"), again.params.get(key, "(absent)")
        if before != after:
            result.differences.append(Difference("param", key, f"{before!r} → {after!r}"))


def _metrics(original: RunView, again: RunView, rtol: float, atol: float, result: Verification) -> None:
    for ident in sorted(set(original.metrics) | set(again.metrics)):
        name = f"{ident[0]}@{ident[1]}"
        if _measured(original, ident) or _measured(again, ident):
            continue
        if ident not in again.metrics or ident not in original.metrics:
            where = "the re-run" if ident not in again.metrics else "the original"
            result.differences.append(Difference("metric", name, f"missing in {where}"))
            continue
        before, after = original.metrics[ident], again.metrics[ident]
        if before.steps != after.steps:
            first = next((i for i, (a, b) in enumerate(zip(before.steps, after.steps)) if a != b),
                         min(len(before.steps), len(after.steps)))
            result.differences.append(Difference(
                "metric", name, f"{len(before.steps)} points, now {len(after.steps)}; steps differ from point {first}"))
            continue
        result.compared_points += len(before.values)
        for step, a, b in zip(before.steps, before.values, after.values):
            if not close(a, b, rtol, atol):
                result.differences.append(Difference("metric", name, f"diverged at step {step}: {a!r} → {b!r}"))
                break


def _samples(original: RunView, again: RunView, result: Verification) -> None:
    """The same samples, in the same order, at every step (sample-level lineage: exact)."""
    for ident in sorted(set(original.sample_indices) | set(again.sample_indices)):
        name = f"{ident[0]}@{ident[1]} (sample indices)"
        before, after = original.sample_indices.get(ident), again.sample_indices.get(ident)
        if before is None or after is None:
            result.differences.append(Difference("samples", name, "missing in the " +
                                                 ("re-run" if after is None else "original")))
            continue
        changed = next((i for i, (a, b) in enumerate(zip(before.values, after.values)) if a != b), None)
        if changed is not None or len(before) != len(after):
            where = f"at step {before.steps[changed]}" if changed is not None else \
                f"{len(before)} steps, now {len(after)}"
            result.differences.append(Difference("samples", name, f"other samples were used {where}"))


def _measured(view: RunView, ident: tuple[str, str]) -> bool:
    """A series yprov4ml measured itself (system load, GPU, energy, timers): it has a unit, and it
    describes the machine and the clock, not a result of the run. Users' own series have no unit."""
    data = view.metrics.get(ident)
    return data is not None and data.unit is not None


def _fingerprints(view: RunView) -> dict[str, str]:
    found = {}
    for dataset in view.datasets:
        if dataset.get("sha256"):
            found[f"dataset {dataset.get('label', dataset.get('prov:label', '?'))}"] = str(dataset["sha256"])
    for artifact in view.artifacts:
        if _true(artifact.get("is_input")) and artifact.get("sha256"):
            found[f"input {artifact.get('name', artifact.get('prov:label', '?'))}"] = str(artifact["sha256"])
    return found


def _true(value: Any) -> bool:
    return value is True or value == "true" or value == "True"


def _data(original: RunView, again: RunView, result: Verification) -> None:
    before, after = _fingerprints(original), _fingerprints(again)
    for name in sorted(set(before) | set(after)):
        if name not in after:
            result.differences.append(Difference("data", name, "not given to the re-run"))
        elif name not in before:
            result.notes.append(f"{name} is new in the re-run")
        elif before[name] != after[name]:
            result.differences.append(Difference("data", name, f"fingerprint changed: sha256 {before[name][:12]}… → "
                                                              f"{after[name][:12]}…"))


def _notes(original: RunView, again: RunView, result: Verification) -> None:
    before, after = recorded_packages(original)[0], recorded_packages(again)[0]
    changed = [f"{name} {before[name]} → {after.get(name, 'absent')}" for name in sorted(before)
               if after.get(name) != before[name]]
    if changed:
        result.notes.append(f"{len(changed)} package version(s) differ: " + "; ".join(changed[:12])
                            + ("; …" if len(changed) > 12 else ""))
    python, now = original.environment.get("python_version"), again.environment.get("python_version")
    if python != now:
        result.notes.append(f"Python {python} → {now}")
