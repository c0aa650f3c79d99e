"""The workflow definition a manager ran (a Snakefile, a CWL document, a flow.cylc, a Parsl script) and its parts.

An adapter names it in the workflow's attributes: ``definition`` (the main
file), ``definition_parts`` (files it includes: rules, step documents,
scripts, configuration) and ``language``. The crate makes the main file its
``ComputationalWorkflow`` in that language, as the Workflow RO-Crate profile
shows; without one, the crate falls back to the bridge's own record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

WROC = "https://w3id.org/workflowhub/workflow-ro-crate#"
# The languages of the Workflow RO-Crate profile's examples, with the same identifiers; others get a local one.
LANGUAGES: dict[str, dict[str, Any]] = {
    "cwl": {"@id": f"{WROC}cwl", "name": "Common Workflow Language", "alternateName": "CWL",
            "identifier": {"@id": "https://w3id.org/cwl/"}, "url": {"@id": "https://www.commonwl.org/"}},
    "snakemake": {"@id": f"{WROC}snakemake", "name": "Snakemake",
                  "identifier": {"@id": "https://doi.org/10.1093/bioinformatics/bts480"},
                  "url": {"@id": "https://snakemake.readthedocs.io"}},
    "parsl": {"@id": "#parsl", "name": "Parsl", "url": {"@id": "https://parsl-project.org"}},
    "cylc": {"@id": "#cylc", "name": "Cylc", "url": {"@id": "https://cylc.github.io"}},
}
VERSION_ATTRIBUTE = {"cwl": "cwl_version", "snakemake": "snakemake_version", "parsl": "parsl_version",
                     "cylc": "cylc_version"}
MAX_PARTS = 1000


@dataclass
class Definition:
    """The main file, its parts (each with its place in the crate), and its language entity."""

    main: Path
    main_dest: str
    language: dict[str, Any]
    parts: list[tuple[Path, str]] = field(default_factory=list)


def _dest(path: Path, base: Path) -> str:
    """``workflow/<path relative to the main file's folder>``, or ``workflow/parts/<name>`` for a file beside it."""
    try:
        relative = PurePosixPath(path.resolve().relative_to(base.resolve()).as_posix())
    except ValueError:
        return f"workflow/parts/{path.name}"
    return f"workflow/{relative}"


def _paths(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)  # lists are kept as JSON text among the attributes
        except ValueError:
            return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def workflow_definition(manifest: dict[str, Any]) -> Definition | None:
    """The definition the manifest's attributes name, if its main file is there to be read."""
    attributes = manifest.get("attributes") or {}
    main = attributes.get("definition")
    if not isinstance(main, str) or not Path(main).is_file():
        return None
    main_path = Path(main).absolute()
    key = str(attributes.get("language") or "").lower()
    language = dict(LANGUAGES.get(key) or {"@id": f"#language-{key or 'unknown'}", "name": key or "unknown"})
    version = attributes.get(VERSION_ATTRIBUTE.get(key, ""))
    if version:
        language["version"] = str(version)
    base, seen = main_path.parent, {main_path.resolve()}
    parts: list[tuple[Path, str]] = []
    for text in _paths(attributes.get("definition_parts"))[:MAX_PARTS]:
        path = Path(text).absolute()
        if path.is_file() and not path.is_symlink() and path.resolve() not in seen:
            seen.add(path.resolve())
            parts.append((path, _dest(path, base)))
    return Definition(main_path, _dest(main_path, base), language, parts)
