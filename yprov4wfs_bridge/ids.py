"""Ids of workflows, tasks and data: safe as file names, paths and QName parts."""

from __future__ import annotations

import hashlib
import re

VALID_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
MAX_ID_CHARS = 120


def safe_id(text: str) -> str:
    """An id made of ``text``; a short digest keeps it unique when characters had to be replaced."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("._-") or "x"
    if cleaned != text or len(cleaned) > MAX_ID_CHARS:
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[:MAX_ID_CHARS - 9]}-{digest}"
    return cleaned if VALID_ID.match(cleaned) else f"x{cleaned}"
