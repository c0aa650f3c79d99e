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
READ_BYTES = 16 * 2**10  # read at a time: also how finely the size of one part is known
_START, _END = ("start_map", "start_array"), ("end_map", "end_array")


class PartTooBig(DocumentError):
    """One part of a streamed document (a bundle, or a top-level section) is larger than a check may hold."""


class _Hashing:
    """A binary file that hashes what is read from it and counts the bytes."""

    def __init__(self, handle: BinaryIO, digest: Any):
        self.handle, self.digest, self.position = handle, digest, 0

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.digest.update(block)
        self.position += len(block)
        return block


def stream_document(path: Path, on_bundle: Callable[[str, Any], None], top: dict[str, Any] | None = None,
                    max_part_bytes: int | None = None) -> tuple[dict[str, Any], str]:
    """The document with an empty ``bundle`` map, and its sha256; each bundle goes to ``on_bundle(id, bundle)``
    as it is read. DocumentError when the file is not one JSON object; PartTooBig when one bundle or one
    top-level section spans more than ``max_part_bytes``.

    ``top`` (filled as the file is read) lets ``on_bundle`` see the parts before the bundles, the prefixes.
    """
    import ijson

    digest = hashlib.sha256()
    top = {} if top is None else top
    depth, key, bundle_id = 0, None, None
    builder: Any = None
    capture_depth, sink = 0, None
    try:
        with open(path, "rb") as handle:
            reader = _Hashing(handle, digest)
            started = 0
            for _, event, value in ijson.parse(reader, buf_size=READ_BYTES, use_float=True):
                if builder is not None:  # inside a value being built
                    builder.event(event, value)
                    depth += 1 if event in _START else -1 if event in _END else 0
                    if max_part_bytes is not None and reader.position - started > max_part_bytes:
                        part = f"bundle {bundle_id!r}" if depth > 2 and key == "bundle" else f"{key!r}"
                        raise PartTooBig(f"{path}: its {part} spans more than {max_part_bytes} bytes, more than "
                                         "one part of a document may have for this check")
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
                    builder, capture_depth, started = ijson.ObjectBuilder(), depth, reader.position
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
