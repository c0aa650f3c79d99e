"""Checking a crate: roc-validator offline against a profile, and the metadata a crate still lacks.

Offline, roc-validator serves remote JSON-LD contexts from a requests-cache
SQLite cache only; :func:`seed_validator_cache` puts the RO-Crate 1.1 context
(shipped under ``data/``) there under its own URL — never the 1.3 context
under the 1.1 URL.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from ..storage.files import read_json

RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
# roc-validator's own issue #51 (open): it wants every ComputationalWorkflow to have an http(s) id, while the
# Workflow RO-Crate profile wants the main workflow to be a file inside the crate — which has a relative id.
# No crate can satisfy both offline; this one check is reported apart, never hidden.
KNOWN_VALIDATOR_CONFLICT = "https://github.com/crs4/rocrate-validator/issues/51"


@dataclass
class CrateReport:
    passed: bool
    severity: str
    profile: str
    issues: list[str]
    missing_metadata: list[str] = field(default_factory=list)
    known_conflicts: list[str] = field(default_factory=list)


def default_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "yprov4wfs" / "rocrate-validator-http"


def seed_validator_cache(cache_path: Path) -> None:
    """Put the RO-Crate 1.1 JSON-LD context (shipped with the package) in the validator's HTTP cache."""
    import requests
    from requests_cache import CachedSession
    from urllib3.response import HTTPResponse

    cache_path.parent.mkdir(parents=True, exist_ok=True)
    session = CachedSession(cache_name=str(cache_path), backend="sqlite", expire_after=-1)
    if session.cache.contains(url=RO_CRATE_CONTEXT):
        return
    body = (Path(__file__).parent / "data" / "ro-crate-1.1-context.jsonld").read_bytes()
    if json.loads(body).get("@id") != RO_CRATE_CONTEXT:
        raise RuntimeError("the shipped RO-Crate context is not the 1.1 context")
    headers = {"Content-Type": "application/ld+json"}
    response = requests.Response()
    response.status_code, response._content, response.url, response.encoding = 200, body, RO_CRATE_CONTEXT, "utf-8"
    response.headers.update(headers)
    response.request = requests.Request("GET", RO_CRATE_CONTEXT).prepare()
    response.raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, preload_content=False,
                                request_url=RO_CRATE_CONTEXT)
    session.cache.save_response(response)
    session.close()


def _is_known_conflict(issue: Any, main_entity: str | None) -> bool:
    """The validator's #51 check, failing on the main workflow file (and on nothing else)."""
    return (issue.check.name == "SoftwareApplication id" and main_entity is not None
            and str(issue.violatingPropertyValue or "").endswith("/" + main_entity))


def validate_crate(path: str | Path, severity: str = "REQUIRED", profile: str = "provenance-run-crate-0.5",
                   cache_path: Path | None = None) -> CrateReport:
    """roc-validator, offline, against ``profile`` at ``severity`` (REQUIRED, RECOMMENDED, OPTIONAL)."""
    from rocrate_validator import services
    from rocrate_validator.models.severity import Severity

    cache_path = cache_path or default_cache_path()
    seed_validator_cache(cache_path)
    result = services.validate({
        "rocrate_uri": str(Path(path).resolve()), "profile_identifier": profile,
        "requirement_severity": severity.upper(), "offline": True, "cache_path": str(cache_path),
        "skip_availability_check": True,
    })
    level = Severity[severity.upper()]
    graph = _crate_graph(Path(path))
    main = (_root(graph).get("mainEntity") or {}).get("@id") if graph else None
    issues, conflicts = set(), set()
    for issue in result.get_issues(min_severity=level):
        line = f"[{issue.severity.name}] {issue.check.requirement.name}: {issue.message}"
        if issue.violatingEntity:
            line += f" ({issue.violatingEntity})"
        (conflicts if _is_known_conflict(issue, main) else issues).add(line)
    missing = metadata_missing(graph) if level <= Severity.RECOMMENDED and graph else []
    return CrateReport(not issues, severity.upper(), profile, sorted(issues), missing,
                       sorted(f"{c} — roc-validator's own conflict, {KNOWN_VALIDATOR_CONFLICT}" for c in conflicts))


def _crate_graph(path: Path) -> dict[str, dict[str, Any]] | None:
    if not path.is_dir():  # a zipped crate: the validator reads it, these helpers do not
        return None
    try:
        data = read_json(path / "ro-crate-metadata.json")
    except DocumentError:
        return None
    graph = data.get("@graph") if isinstance(data, dict) else None
    return {e["@id"]: e for e in graph if isinstance(e, dict) and "@id" in e} if isinstance(graph, list) else None


def _root(graph: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return graph.get("./", {})


def metadata_missing(graph: dict[str, dict[str, Any]]) -> list[str]:
    """The publication metadata a crate lacks, named as the ``[tool.yprov4ml]`` keys that would supply it."""
    root = _root(graph)
    missing = []
    authors = root.get("author")
    authors = [authors] if isinstance(authors, dict) else (authors or [])
    if not authors:
        missing.append("authors: no author (give name, orcid and affiliation)")
    elif any("affiliation" not in graph.get(a.get("@id"), {}) for a in authors):
        missing.append("authors: an author without affiliation")
    if not isinstance(root.get("license"), dict):
        missing.append("license: no SPDX license id")
    if not root.get("publisher"):
        missing.append("publisher: no publishing organisation (name and url)")
    if not root.get("version"):
        missing.append("version: the workflow or code has no version")
    if not root.get("url"):
        missing.append("url: no address of the code (its repository)")
    return missing


def profile_of(path: str | Path) -> str:
    """The most specific run-crate profile a crate claims (a workflow crate: provenance; a run crate: process)."""
    graph = _crate_graph(Path(path))
    if graph is None:
        return "provenance-run-crate-0.5"
    conforms = _root(graph).get("conformsTo") or []
    claimed = {c.get("@id") for c in ([conforms] if isinstance(conforms, dict) else conforms) if isinstance(c, dict)}
    for iri, profile in (("https://w3id.org/ro/wfrun/provenance/0.5", "provenance-run-crate-0.5"),
                         ("https://w3id.org/ro/wfrun/workflow/0.5", "workflow-run-crate-0.5"),
                         ("https://w3id.org/ro/wfrun/process/0.5", "process-run-crate-0.5")):
        if iri in claimed:
            return profile
    return "ro-crate-1.1"


def report_lines(path: str | Path, report: CrateReport) -> list[str]:
    """The report in words: verdict, issues, the validator's known conflict, the metadata still missing."""
    lines = [f"{path}: {'valid' if report.passed else 'NOT valid'} {report.profile} at {report.severity} severity "
             "(roc-validator, offline)"]
    lines += [f"  {issue}" for issue in report.issues]
    lines += [f"  not counted: {conflict}" for conflict in report.known_conflicts]
    if report.missing_metadata:
        lines.append("  to be clean at RECOMMENDED, give (in [tool.yprov4ml], yprov4ml.toml or YPROV4ML_*):")
        lines += [f"    - {item}" for item in report.missing_metadata]
    return lines
