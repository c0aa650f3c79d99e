"""PROV identifiers: any user key becomes a valid QName local part, without collisions."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def safe_name(text: str) -> str:
    """Return a QName-safe, file-name-safe form of ``text``.

    Characters outside ``[A-Za-z0-9_.-]`` become ``_``; when anything had to be
    replaced, a short hash of the original is appended so that two different
    keys (``"a b"`` and ``"a/b"``) never map to the same identifier. The
    original text is kept by callers as ``prov:label``.
    """
    cleaned = _UNSAFE.sub("_", text).strip(".") or "_"
    if cleaned != text:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned}-{digest}"
    return cleaned
