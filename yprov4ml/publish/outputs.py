"""What a run publishes on request: its model card and its crate, with the metadata found for it."""

from __future__ import annotations

from pathlib import Path

from .card import write_card
from .metadata import PublicationMetadata, load_metadata
from .run_crate import build_run_crate


def publish_run(run_dir: Path, crate: bool = True, card: bool = True,
                metadata: PublicationMetadata | None = None) -> dict[str, Path]:
    """Write ``model_card.md`` and/or ``crate/`` in ``run_dir`` (the card first, so that the crate holds it)."""
    metadata = metadata or load_metadata()
    made = {}
    if card:
        made["card"] = write_card(run_dir, metadata)
    if crate:
        made["crate"] = build_run_crate(run_dir, metadata=metadata)
    return made
