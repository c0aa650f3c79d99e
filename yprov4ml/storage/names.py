"""Names derived from user text: valid QName local parts and file names, bounded and collision-free.

``safe_name`` keeps a short plain name as it is and turns anything else into a
readable prefix plus a hash of the whole text. The two forms cannot meet: a
kept name never ends in ``-`` and eight hex digits, a derived one always does —
so ``"a b"`` (→ ``a_b-7dbde935``) and ``"a_b-7dbde935"`` (→ ``a_b-7dbde935-…``)
stay apart. ``UniqueNames`` mints one name per key for a run and lengthens
the hash in the (2⁻³² per pair) case of two keys sharing prefix and hash.
"""

from __future__ import annotations

import hashlib
import re

MAX_READABLE = 64  # characters of the user's text kept in a name (file names stay far below 255 bytes)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # fullmatch: "$" would accept a trailing newline
_DERIVED = re.compile(r"-[0-9a-f]{8,40}\Z")


def _digest(text: str, length: int) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def safe_name(text: str, digest_length: int = 8) -> str:
    """A QName-safe, file-name-safe form of ``text`` (the original is kept by callers as ``prov:label``)."""
    if (len(text) <= MAX_READABLE and _PLAIN.fullmatch(text) and not text.endswith(".")
            and not _DERIVED.search(text)):
        return text
    readable = _UNSAFE.sub("_", text)[:MAX_READABLE].strip(".").lstrip("-") or "_"
    return f"{readable}-{_digest(text, digest_length)}"


MAX_IDENTITY = 200  # characters of a run id or experiment name kept as it is (a path component: 255 bytes)


def safe_part(text: str) -> str:
    """An identity — a run id, an experiment name, a job id — as a file name and QName part.

    Kept exactly when it already is one (a generated run id ends in eight hex
    digits, which ``safe_name`` would take for a derived name and hash again);
    otherwise derived by ``safe_name``. Keys of one run (metrics, params,
    models) go through ``safe_name`` / ``UniqueNames`` instead, which keep
    them apart from one another.
    """
    if len(text) <= MAX_IDENTITY and _PLAIN.fullmatch(text) and not text.endswith("."):
        return text
    return safe_name(text)


class UniqueNames:
    """One name per key, distinct across keys: minted once, then always the same."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set()

    def name(self, key: str) -> str:
        """The name of ``key``, minted on first use."""
        found = self._by_key.get(key)
        if found is not None:
            return found
        for length in (8, 16, 40):
            candidate = safe_name(key, length)
            if candidate not in self._taken:
                break
        else:  # sha1 in full collided: count instead (never seen, but never a shared name)
            n = 2
            while f"{candidate}-{n}" in self._taken:
                n += 1
            candidate = f"{candidate}-{n}"
        self._by_key[key] = candidate
        self._taken.add(candidate)
        return candidate
