"""Publication metadata given once — authors, license, publisher, name, version, keywords — for crates and cards.

Read, in increasing precedence, from a ``yprov4ml.toml`` (its top level) or
the ``[tool.yprov4ml]`` table of a ``pyproject.toml`` (the nearest one found
walking up from a start directory, or the file named by
``$YPROV4ML_METADATA``), from environment variables, and from explicit
arguments. Everything is checked when read: an ORCID must be well formed with
a valid check digit, a license must be an SPDX identifier.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import YProvError

ORCID_BASE = "https://orcid.org/"
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
# Environment variables, for batch jobs that cannot edit a file.
ENV = {"authors": "YPROV4ML_AUTHORS", "license": "YPROV4ML_LICENSE", "publisher": "YPROV4ML_PUBLISHER",
       "publisher_url": "YPROV4ML_PUBLISHER_URL", "name": "YPROV4ML_WORKFLOW_NAME",
       "version": "YPROV4ML_WORKFLOW_VERSION", "keywords": "YPROV4ML_KEYWORDS", "url": "YPROV4ML_WORKFLOW_URL"}
FILE_ENV = "YPROV4ML_METADATA"
KEYS = ("authors", "license", "publisher", "name", "version", "keywords", "description", "url")


class MetadataError(YProvError, ValueError):
    """Publication metadata that cannot be used as given (malformed ORCID, unknown license, bad file)."""


@dataclass(frozen=True)
class Organization:
    name: str
    url: str | None = None


@dataclass(frozen=True)
class Author:
    name: str
    orcid: str | None = None  # the full https://orcid.org/ IRI
    affiliation: Organization | None = None
    email: str | None = None


@dataclass(frozen=True)
class PublicationMetadata:
    """What a crate or a model card says about who made the work and how it may be reused."""

    authors: tuple[Author, ...] = ()
    license: str | None = None  # an SPDX identifier, canonical case
    publisher: Organization | None = None
    name: str | None = None
    version: str | None = None
    keywords: tuple[str, ...] = ()
    description: str | None = None
    url: str | None = None  # where the workflow or code lives (a repository)
    source: str = "none"  # where it was read from, for messages


def normalise_orcid(value: str) -> str:
    """The ``https://orcid.org/`` IRI of an ORCID iD; MetadataError when malformed or its check digit is wrong."""
    match = _ORCID.match(str(value).strip())
    if not match:
        raise MetadataError(f"ORCID {value!r} is malformed: write it as 0000-0002-1825-0097 or "
                            "https://orcid.org/0000-0002-1825-0097")
    digits = match.group(1).replace("-", "")
    total = 0
    for digit in digits[:-1]:  # ISO 7064 MOD 11-2, as ORCID specifies
        total = (total + int(digit)) * 2
    check = (12 - total % 11) % 11
    if digits[-1] != ("X" if check == 10 else str(check)):
        raise MetadataError(f"ORCID {value!r} has a wrong check digit (expected {'X' if check == 10 else check}): "
                            "copy it again from orcid.org")
    return ORCID_BASE + match.group(1)


def normalise_license(value: str) -> str:
    """The canonical SPDX id (or expression) of ``value``; MetadataError when SPDX does not know it."""
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    try:
        return str(canonicalize_license_expression(str(value)))
    except InvalidLicenseExpression:
        raise MetadataError(f"license {value!r} is not an SPDX license id: use one from https://spdx.org/licenses/ "
                            "such as 'CC-BY-4.0', 'MIT' or 'Apache-2.0'") from None


def license_url(spdx: str) -> str | None:
    """The SPDX page of a single license id (None for a compound expression)."""
    return f"https://spdx.org/licenses/{spdx}" if re.fullmatch(r"[A-Za-z0-9.+-]+", spdx) else None


def _organization(value: Any, what: str) -> Organization | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        return Organization(value.strip())
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and value["name"].strip():
        url = value.get("url")
        if url is not None and not (isinstance(url, str) and re.match(r"^https?://", url)):
            raise MetadataError(f"{what} url {url!r} must be an http(s) address")
        return Organization(value["name"].strip(), url)
    raise MetadataError(f"{what} must be a name or a table with 'name' (and 'url'), not {value!r}")


def _author(value: Any) -> Author:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str) or not value["name"].strip():
        raise MetadataError(f"an author must be a name or a table with 'name' (and 'orcid', 'affiliation'), "
                            f"not {value!r}")
    orcid = normalise_orcid(value["orcid"]) if value.get("orcid") else None
    return Author(value["name"].strip(), orcid, _organization(value.get("affiliation"), "an affiliation"),
                  value.get("email") or None)


def _from_mapping(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked fields of a metadata table (unknown keys refused: a typo must not vanish silently)."""
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise MetadataError(f"{source}: unknown metadata key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    fields: dict[str, Any] = {}
    try:
        if "authors" in table:
            authors = table["authors"]
            fields["authors"] = tuple(_author(a) for a in (authors if isinstance(authors, list) else [authors]))
        if table.get("license"):
            fields["license"] = normalise_license(table["license"])
        if table.get("publisher"):
            fields["publisher"] = _organization(table["publisher"], "the publisher")
        for key in ("name", "version", "description", "url"):
            if table.get(key) is not None:
                fields[key] = str(table[key])
        if "keywords" in table:
            keywords = table["keywords"]
            fields["keywords"] = tuple(str(k).strip() for k in (keywords if isinstance(keywords, list)
                                                                else str(keywords).split(",")) if str(k).strip())
    except MetadataError as exc:
        raise MetadataError(f"{source}: {exc}") from None
    return fields


def parse_authors(text: str) -> list[dict[str, str]]:
    """``Name|ORCID|Affiliation; Name2|...`` — fields may be left empty."""
    authors = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, orcid, affiliation = (part.split("|") + ["", ""])[:3]
        authors.append({k: v.strip() for k, v in (("name", name), ("orcid", orcid), ("affiliation", affiliation))
                        if v.strip()})
    return authors


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key, variable in ENV.items():
        value = environ.get(variable, "").strip()
        if not value or key == "publisher_url":
            continue
        table[key] = parse_authors(value) if key == "authors" else value
    if "publisher" in table:
        table["publisher"] = {"name": table["publisher"], "url": environ.get(ENV["publisher_url"]) or None}
    return _from_mapping(table, "environment variables YPROV4ML_*") if table else {}


def find_metadata_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``yprov4ml.toml``, or ``pyproject.toml`` with a ``[tool.yprov4ml]`` table, from ``start`` up."""
    for directory in [start, *start.parents]:
        for name in ("yprov4ml.toml", "pyproject.toml"):
            path = directory / name
            if path.is_file():
                table = read_metadata_file(path)
                if table is not None:
                    return path, table
    return None


def read_metadata_file(path: Path) -> dict[str, Any] | None:
    """The metadata table of one file (None for a pyproject.toml without ``[tool.yprov4ml]``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MetadataError(f"{path}: not readable TOML ({exc})") from None
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("yprov4ml")
        return table if isinstance(table, dict) else None
    return data


def load_metadata(start: str | Path | None = None, file: str | Path | None = None,
                  environ: Mapping[str, str] | None = None, **overrides: Any) -> PublicationMetadata:
    """Metadata from a file (``file``, ``$YPROV4ML_METADATA`` or the nearest one above ``start``), then the
    environment, then ``overrides`` (same keys as the file: authors, license, publisher, name, version, ...)."""
    environ = os.environ if environ is None else environ
    fields: dict[str, Any] = {}
    sources = []
    file = file or environ.get(FILE_ENV) or None
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise MetadataError(f"metadata file {path} does not exist")
        table = read_metadata_file(path)
        if table is None:
            raise MetadataError(f"{path} has no [tool.yprov4ml] table")
        found: tuple[Path, dict[str, Any]] | None = (path, table)
    else:
        found = find_metadata_file(Path(start or Path.cwd()).absolute())
    if found is not None:
        fields.update(_from_mapping(found[1], str(found[0])))
        sources.append(str(found[0]))
    from_env = _from_environment(environ)
    if from_env:
        fields.update(from_env)
        sources.append("environment")
    given = {k: v for k, v in overrides.items() if v not in (None, (), [])}
    if given:
        fields.update(_from_mapping(given, "arguments"))
        sources.append("arguments")
    return replace(PublicationMetadata(), **fields, source=" + ".join(sources) or "none")
