"""Reading a document too large to parse whole, with ijson: one bundle in memory at a time.

A merged document of thousands of ranks is mostly its bundles. Streamed, each bundle is parsed, turned
into its rows and dropped before the next one is read, and the document's other parts (its own
activities, entities, relations) are kept; the file is hashed as it is read. Nothing is allocated from a
size the file states: ijson reads it in fixed chunks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ..errors import DocumentError

STREAM_BYTES = 64 * 2**20  # documents above this are streamed; below, one parse is faster
_START, _END = ("start_map", "start_array"), ("end_map", "end_array")


class _Hashing:
    """A binary file that hashes what is read from it."""

    def __init__(self, handle: BinaryIO, digest: Any):
        self.handle, self.digest = handle, digest

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.digest.update(block)
        return block


def stream_document(path: Path, on_bundle: Callable[[str, Any], None]) -> tuple[dict[str, Any], str]:
    """The document with an empty ``bundle`` map, and its sha256; each bundle goes to ``on_bundle(id, bundle)``
    as it is read. DocumentError when the file is not one JSON object."""
    import ijson

    digest = hashlib.sha256()
    top: dict[str, Any] = {}
    depth, key, bundle_id = 0, None, None
    builder: Any = None
    capture_depth, sink = 0, None
    try:
        with open(path, "rb") as handle:
            for _, event, value in ijson.parse(_Hashing(handle, digest), use_float=True):
                if builder is not None:  # inside a value being built
                    builder.event(event, value)
                    depth += 1 if event in _START else -1 if event in _END else 0
                    if depth == capture_depth:
                        sink(builder.value)
                        builder = None
                    continue
                if event == "map_key":
                    if depth == 1:
                        key = value
                    elif depth == 2 and key == "bundle":
                        bundle_id = value
                    continue
                if event in _START:
                    if depth == 0 or (depth == 1 and key == "bundle"):  # the root, or the map of bundles
                        if event != "start_map":
                            raise DocumentError(f"{path}: not a PROV-JSON object")
                        if depth == 1:
                            top["bundle"] = {}  # it had bundles: they went to on_bundle
                        depth += 1
                        continue
                    builder, capture_depth = ijson.ObjectBuilder(), depth
                    builder.event(event, value)
                    depth += 1
                    if depth == 3:  # one bundle: its rows now, its records dropped
                        sink = (lambda b, identifier=bundle_id: on_bundle(identifier, b))
                    else:
                        sink = (lambda v, name=key: top.__setitem__(name, v))
                    continue
                if event in _END:
                    depth -= 1
                    continue
                if depth == 1:
                    top[key] = value
                elif depth == 0:
                    raise DocumentError(f"{path}: not a PROV-JSON object")
    except ijson.JSONError as exc:
        raise DocumentError(f"{path}: not JSON ({exc})") from None
    return top, digest.hexdigest()
