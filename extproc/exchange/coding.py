"""A body's content coding: which ones the processor reads, and putting a masked body back in
the coding it came in."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping

READABLE_ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate")


def declared_length(headers: Mapping[str, str]) -> int:
    """A body's size from its ``content-length`` (0 when absent: a body Envoy was told not to
    send is counted from its header, never read)."""
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else 0


def is_compressed(encoding: str) -> bool:
    return encoding not in ("", "identity")


def encode(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(body, compresslevel=5)
    if encoding == "deflate":
        return zlib.compress(body, 5)
    return body
