"""What every crate of the project shares: the ro-crate-py crate, files with formats, metadata, README, writing.

Both the per-run crate (``yprov4ml crate``) and the workflow crate of the
bridge are built on :class:`CrateKit`, so that they describe authors,
license, publisher, files and times in one way — the way the Workflow Run
RO-Crate and WorkflowHub profiles recommend.
"""

from __future__ import annotations

import mimetypes
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from ..storage.files import atomic_write_text
from ..version import __version__
from .metadata import Author, Organization, PublicationMetadata, license_url

RO_CRATE_1_1 = "https://w3id.org/ro/crate/1.1"
PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
    "wroc": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
WFRUN_TERMS = "https://w3id.org/ro/terms/workflow-run#"
PROV_JSON = "https://www.w3.org/submissions/prov-json/"
PROJECT_IRI = "https://w3id.org/yprov4ml"
# Formats of the files the project writes, which mimetypes does not know.
FORMATS = {".ymetric": "application/x-yprov4ml-metric", ".jsonl": "application/jsonl", ".pt": "application/x-pytorch",
           ".pth": "application/x-pytorch", ".ckpt": "application/x-pytorch", ".patch": "text/x-diff",
           ".md": "text/markdown", ".py": "text/x-python", ".dot": "text/vnd.graphviz", ".npy": "application/x-npy",
           ".safetensors": "application/x-safetensors", ".keras": "application/x-keras",
           ".nc": "application/x-netcdf", ".parquet": "application/vnd.apache.parquet"}
# schema.org action statuses, as the run-crate profiles want them (plain strings). A run still RUNNING when the
# crate is built has no status the profiles accept, so none is given; a gap says why.
STATUS = {"FINISHED": "http://schema.org/CompletedActionStatus", "FAILED": "http://schema.org/FailedActionStatus",
          "KILLED": "http://schema.org/FailedActionStatus", "INTERRUPTED": "http://schema.org/FailedActionStatus",
          "NOT_RUN": "http://schema.org/PotentialActionStatus"}
NO_LICENSE = ("No license was given for this crate: ask its authors before reuse. (Set `license` in "
              "[tool.yprov4ml] or yprov4ml.toml, or $YPROV4ML_LICENSE.)")


def encoding_format(path: str | Path) -> str:
    """The media type of a file, from its name."""
    suffix = PurePosixPath(str(path)).suffix.lower()
    return FORMATS.get(suffix) or mimetypes.guess_type(str(path))[0] or "application/octet-stream"


def iso_time(value: float | str | None) -> str | None:
    """ISO 8601 in the form the run-crate profiles check: seconds, milliseconds and a ``+00:00`` offset."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        moment = datetime.fromtimestamp(float(value), timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def action_status(status: str) -> dict[str, str]:
    """``actionStatus`` of an action, when its status is one the profiles accept (none for RUNNING)."""
    found = STATUS.get(status)
    return {"actionStatus": found} if found else {}


def action_record(start: float | str | None, end: float | str | None, status: str, error: Any) -> dict[str, Any]:
    """startTime, endTime, actionStatus and error of an action, as the run-crate profiles want them: the error
    only on a failed action."""
    props = {name: iso_time(value) for name, value in (("startTime", start), ("endTime", end)) if value}
    props.update(action_status(status))
    if error and props.get("actionStatus") == STATUS["FAILED"]:
        props["error"] = str(error)
    return props


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


class CrateKit:
    """One crate being built: entities, files, metadata, then :meth:`write` (atomic, as a whole)."""

    def __init__(self, name: str, description: str, profiles: list[str]):
        from rocrate.rocrate import ROCrate

        self.crate = ROCrate(version="1.1")
        self.crate.metadata.extra_terms.update({"resourceUsage": WFRUN_TERMS + "resourceUsage",
                                                "sha256": WFRUN_TERMS + "sha256"})
        self.root = self.crate.root_dataset
        self.root["name"] = name
        self.root["description"] = description
        self.root["datePublished"] = iso_time(datetime.now(timezone.utc).timestamp())
        self.copied: list[str] = []
        self.referenced: list[str] = []
        self._scratch = Path(tempfile.mkdtemp(prefix="yprov4ml-crate-"))  # texts made for the crate
        for key in profiles:  # the profiles are entities of the crate, as the profiles require
            self.add(PROFILES[key], {"@type": "CreativeWork", "name": f"{key} profile",
                                     "version": PROFILES[key].rsplit("/", 1)[-1]})
        self.root["conformsTo"] = refs(list(PROFILES[key] for key in profiles))
        conforms = [{"@id": RO_CRATE_1_1}] + ([{"@id": PROFILES["wroc"]}] if "wroc" in profiles else [])
        self.crate.metadata["conformsTo"] = conforms if len(conforms) > 1 else conforms[0]

    def add(self, entity_id: str, properties: dict[str, Any]) -> Any:
        """A contextual entity (returned; its ``id`` is what others refer to)."""
        from rocrate.model.contextentity import ContextEntity

        if entity_id in self.crate:  # (a membership test: crate.get scans every entity for sub-crates first)
            return self.crate.get(entity_id)
        return self.crate.add(ContextEntity(self.crate, entity_id, properties=properties))

    def add_file(self, source: Path, dest: str, properties: dict[str, Any],
                 reference_over_bytes: int | None = None) -> Any:
        """A file copied into the crate at ``dest`` (or referenced by URI when larger than the threshold)."""
        parts = PurePosixPath(dest).parts
        if PurePosixPath(dest).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"crate path {dest!r} would leave the crate")  # a bug, never user input
        if dest in self.crate:
            return self.crate.get(dest)
        size = source.stat().st_size
        props = {"contentSize": str(size), "encodingFormat": encoding_format(source.name), **properties}
        if reference_over_bytes is not None and size > reference_over_bytes:
            self.referenced.append(str(source))
            return self.crate.add_file(source.resolve().as_uri(), properties={"name": source.name, **props},
                                       fetch_remote=False, validate_url=False)
        self.copied.append(dest)
        return self.crate.add_file(source, dest_path=dest, properties=props)

    def add_text(self, dest: str, text: str, properties: dict[str, Any]) -> Any:
        """A file of the crate whose content is ``text`` (written with the crate)."""
        source = self._scratch / f"{len(self.copied)}-{PurePosixPath(dest).name}"
        atomic_write_text(source, text)
        return self.add_file(source, dest, properties)

    def readme(self, text: str) -> Any:
        """``README.md``, about the crate, as WorkflowHub recommends."""
        return self.add_text("README.md", text, {"name": "README", "about": {"@id": "./"},
                                                 "encodingFormat": "text/markdown"})

    def organization(self, org: Organization) -> Any:
        return self.add(org.url or f"#org-{_slug(org.name)}", {"@type": "Organization", "name": org.name,
                                                               **({"url": org.url} if org.url else {})})

    def person(self, author: Author) -> Any:
        props: dict[str, Any] = {"@type": "Person", "name": author.name}
        if author.affiliation is not None:
            props["affiliation"] = {"@id": self.organization(author.affiliation).id}
        if author.email:
            props["email"] = author.email
        return self.add(author.orcid or f"#person-{_slug(author.name)}", props)

    def apply_metadata(self, metadata: PublicationMetadata) -> list[Any]:
        """Authors, license, publisher, keywords and version on the root; returns the author entities."""
        authors = [self.person(a) for a in metadata.authors]
        if authors:
            self.root["author"] = refs(authors)
        if metadata.license:
            url = license_url(metadata.license)
            if url:
                self.root["license"] = {"@id": self.add(url, {"@type": "CreativeWork", "name": metadata.license,
                                                              "identifier": metadata.license}).id}
            else:
                self.root["license"] = metadata.license
        else:
            self.root["license"] = NO_LICENSE
        if metadata.publisher is not None:
            self.root["publisher"] = {"@id": self.organization(metadata.publisher).id}
        if metadata.keywords:
            self.root["keywords"] = list(metadata.keywords)
        if metadata.version:
            self.root["version"] = metadata.version
        if metadata.url:
            self.root["url"] = metadata.url
        return authors

    def software(self, entity_id: str, name: str, version: str, url: str | None, **extra: Any) -> Any:
        """A SoftwareApplication with the url and version the Process Run Crate profile recommends."""
        return self.add(entity_id, {"@type": "SoftwareApplication", "name": name, "softwareVersion": version,
                                    **({"url": url} if url else {}), **extra})

    def yprov4ml(self) -> Any:
        return self.software(PROJECT_IRI, "yprov4ml", __version__, PROJECT_IRI)

    def write(self, target: Path) -> Path:
        """Write the crate to ``target``, replacing what was there only once the new crate is whole."""
        target = Path(target)
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            self.crate.write(staging)
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
        return target


def ref(entity: Any) -> dict[str, str]:
    return {"@id": entity.id if hasattr(entity, "id") else entity}


def refs(entities: list[Any]) -> Any:
    """References to ``entities``; RO-Crate 1.1 compacts a one-element list to its element."""
    found = [ref(e) for e in entities]
    return found[0] if len(found) == 1 else found
