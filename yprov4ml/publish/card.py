"""The model card of a run, ``model_card.md``, built only from its PROV record.

The header is YAML metadata as in the Hugging Face model-card convention
(``license``, ``tags``, ``datasets``, ``metrics``, ``model-index`` with the
final values, ``co2_eq_emissions`` in grams); the body has sections for the
model, its training data, procedure and hyperparameters, results, energy and
emissions, and provenance. Nothing is asked of the user that the record does
not hold: what was not recorded is said to be not recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..collectors.energy import summed_totals
from ..prov.reader import RunView, load_run
from ..storage.files import atomic_write_text
from ..storage.layout import rank_documents
from .metadata import PublicationMetadata

CARD = "model_card.md"
SYSTEM_CONTEXT = "system"  # collected figures (CPU, memory, energy series), not results


def _yaml_scalar(value: Any) -> str:
    # JSON scalars are YAML scalars; quoting every string keeps "yes", "1e3" or ": " from changing meaning.
    return json.dumps(value, ensure_ascii=False)


def to_yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML of dicts, lists and scalars (all the card header needs)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines += to_yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item if item not in ({}, []) else None)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines += nested[1:]
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    return lines


def _final(view: RunView) -> list[tuple[str, str, float, int, float, float]]:
    """(key, context, last value, last step, min, max) of every series that is a result: logged by the user,
    not measured by yprov4ml's collectors (those carry a unit, or sit in the system context)."""
    rows = []
    for (key, context), data in sorted(view.metrics.items()):
        if context == SYSTEM_CONTEXT or data.unit or not data.values or data.kind != "scalar":
            continue
        finite = [v for v in data.values if math.isfinite(v)] or data.values
        rows.append((key, context, data.values[-1], data.steps[-1], min(finite), max(finite)))
    return rows


def _views(run_dir: Path) -> list[RunView]:
    """Every rank of the run (rank 0 first); a rank document's path also names its run."""
    run_dir = run_dir.parent if run_dir.is_file() else run_dir
    return [load_run(path) for path in rank_documents(run_dir)] or [load_run(run_dir)]


def header(view: RunView, results: list[tuple], energy: dict[str, float],
           metadata: PublicationMetadata) -> dict[str, Any]:
    """The YAML metadata of the card: rank 0's record, its result series and the run's summed energy."""
    meta: dict[str, Any] = {}
    if metadata.license:
        meta["license"] = metadata.license.lower()  # the Hub's identifiers are lower-case SPDX ids
    meta["library_name"] = view.models[0].get("framework", "").split(" ")[0] if view.models else None
    meta["tags"] = list(dict.fromkeys(["yprov4ml", "provenance", *metadata.keywords]))
    meta["datasets"] = [str(d.get("label") or d.get("prov:label")) for d in view.datasets]
    meta["metrics"] = sorted({key for key, *_ in results})
    meta["model-index"] = [{"name": metadata.name or view.experiment, "results": [{
        "task": {"type": "other", "name": view.experiment},
        **({"dataset": {"name": meta["datasets"][0], "type": meta["datasets"][0]}} if meta["datasets"] else {}),
        "metrics": [{"type": key, "name": f"{key} ({context}, step {step})", "value": value}
                    for key, context, value, step, *_ in results]}]}] if results else []
    if "total_emissions_kg" in energy:
        meta["co2_eq_emissions"] = {"emissions": energy["total_emissions_kg"] * 1000.0, "source": "codecarbon",
                                    "training_type": "training", "hardware_used": _hardware(view)}
    return {k: v for k, v in meta.items() if v not in (None, [], {})}


def _hardware(view: RunView) -> str:
    accelerators = json.loads(view.environment.get("accelerators") or "[]") if view.environment else []
    cpus = view.environment.get("cpu_count") if view.environment else None
    parts = [f"{view.world_size} process(es)"] + ([f"{cpus} CPU(s)"] if cpus else [])
    parts += [str(a.get("name", a)) if isinstance(a, dict) else str(a) for a in accelerators]
    return ", ".join(parts)


def _table(rows: list[list[Any]], head: list[str]) -> list[str]:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _shape(dataset: dict[str, Any]) -> str:
    """A sample's shape as recorded (``[[1, 28, 28], []]``: an image and a scalar label), or a dash."""
    shape = dataset.get("sample_shape", dataset.get("shape"))
    return "—" if shape in (None, "") else str(shape)


def _launch(view: RunView) -> str:
    """``started directly, 1 rank`` or ``torchrun, 8 ranks``."""
    launcher = view.run.get("launcher")
    how = "started directly" if launcher in (None, "", "none") else f"launched by {launcher}"
    return f"{how}, {_ranks(view)}"


def _ranks(view: RunView) -> str:
    return f"{view.world_size} rank" + ("" if view.world_size == 1 else "s")


def render_card(run_dir: str | Path, metadata: PublicationMetadata | None = None) -> str:
    """The text of the model card of the run in ``run_dir``."""
    metadata = metadata or PublicationMetadata()
    views = _views(Path(run_dir))
    view = views[0]
    results = _final(view)
    energy = summed_totals(v.run for v in views)
    lines = ["---", *to_yaml(header(view, results, energy, metadata)), "---", "",
             f"# Model card: {metadata.name or view.experiment}", "",
             f"Run `{view.run_id}` of experiment `{view.experiment}`: {view.status}, {_ranks(view)}, "
             f"from {view.start_time} to {view.end_time}. Everything below is read from the run's PROV-JSON record.",
             "", "## Model details", ""]
    if view.models:
        lines += _table([[m.get("model_name"), m.get("version"), m.get("model_class"), m.get("framework"),
                          m.get("parameter_count"), m.get("size_bytes"), m.get("prov:location"),
                          f"`{str(m.get('sha256', ''))[:16]}…`" if m.get("sha256") else "pending"]
                         for m in view.models],
                        ["model", "version", "class", "framework", "parameters", "bytes", "file", "sha256"])
    else:
        lines.append("No model version was recorded.")
    if metadata.authors:
        lines += ["", "Developed by " + ", ".join(
            a.name + (f" ({a.affiliation.name})" if a.affiliation else "") + (f", {a.orcid}" if a.orcid else "")
            for a in metadata.authors) + "."]
    if metadata.license:
        lines += ["", f"License: {metadata.license}."]
    lines += ["", "## Training data", ""]
    lines += _table([[d.get("label") or d.get("prov:label"), d.get("dataset_class"), d.get("samples"),
                      _shape(d), f"`{str(d.get('sha256', ''))[:16]}…`" if d.get("sha256") else "—"]
                     for d in view.datasets], ["dataset", "class", "samples", "shape", "sha256"]) \
        if view.datasets else ["No dataset was recorded."]
    lines += ["", "## Training procedure and hyperparameters", ""]
    lines += _table([[k, _value(v)] for k, v in sorted(view.params.items(), key=lambda kv: str(kv[0]))],
                    ["parameter", "value"]) if view.params else ["No parameter was recorded."]
    lines += ["", f"Launched as `{view.run.get('command_line', '?')}` ({_launch(view)}); wall time "
              f"{_value(view.run.get('wall_time_s', '?'))} s."]
    lines += ["", "## Results", ""]
    lines += _table([[k, c, _value(v), s, _value(lo), _value(hi)] for k, c, v, s, lo, hi in results],
                    ["metric", "context", "final", "at step", "min", "max"]) if results \
        else ["No result metric was recorded."]
    lines += ["", "## Energy and emissions", ""]
    lines += _table([[name.removeprefix("total_"), _value(value)] for name, value in energy.items()],
                    ["figure (summed over ranks)", "value"]) if energy \
        else ["Energy was not measured in this run (start it with energy tracking to record it)."]
    lines += ["", "## Provenance", "",
              *[f"* PROV-JSON of rank {v.rank}: `{v.prov_path.name}`" for v in views]]
    if view.source:
        lines.append(f"* source: `{view.source.get('script_in_tree') or view.source.get('script')}` (sha256 "
                     f"`{str(view.source.get('script_sha256', ''))[:16]}…`)" +
                     (f", commit `{view.source['git_commit']}`" if view.source.get("git_commit") else ""))
    if view.environment:
        lines.append(f"* environment: Python {view.environment.get('python_version')} on "
                     f"{view.environment.get('os')}")
    lines.append(f"* reproduce: `yprov4ml reproduce {view.run_dir} --run --verify`")
    return "\n".join(lines) + "\n"


def write_card(run_dir: str | Path, metadata: PublicationMetadata | None = None,
               output: str | Path | None = None) -> Path:
    """Write ``model_card.md`` (in the run directory unless ``output`` names another file)."""
    target = Path(output) if output is not None else Path(run_dir) / CARD
    atomic_write_text(target, render_card(run_dir, metadata))
    return target
