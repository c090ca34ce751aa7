"""Decompress a body for inspection without letting it decide how much memory we spend.

A 1 MB gzip body can inflate to 1 GiB; ``gzip.decompress`` would build all of it. ``inflate``
asks zlib for at most one chunk at a time and stops, with ``decompression_limit``, as soon as
the output passes ``max_bytes`` or ``max_ratio`` times the input: memory stays within the cap
plus one chunk, whatever the body claims.

Content codings: ``gzip`` (and ``x-gzip``; several members are decoded one after the other, as
receivers do), ``deflate`` (zlib-wrapped as the RFC says, or raw as some servers send it), and
``identity``. A list such as ``gzip, deflate`` is undone last coding first, each step bounded.
``br`` is not supported (no bounded Brotli decoder is available): it is refused like any other
unknown coding, with ``unsupported_encoding``. Corrupt or truncated data is
``invalid_encoding``. Errors never quote the body.
"""

from __future__ import annotations

import zlib

from extproc.errors import Code
from extproc.masking.results import MaskingError

CHUNK = 64 * 1024
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS


def inflate(body: bytes, encoding: str, *, max_bytes: int, max_ratio: int) -> bytes:
    """The decoded body; ``encoding`` is the Content-Encoding header's value."""
    codings = [part.strip().lower() for part in encoding.split(",") if part.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        limit = min(max_bytes, max(len(body), 1) * max_ratio)
        if coding in ("gzip", "x-gzip"):
            body = _gzip(body, limit)
        elif coding == "deflate":
            body = _deflate(body, limit)
        else:
            raise MaskingError(
                "the body's content encoding cannot be inspected", code=Code.UNSUPPORTED_ENCODING
            )
    return body


def _gzip(body: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        decoder = zlib.decompressobj(_GZIP)
        size = _run(decoder, rest, out, size, limit)
        rest = decoder.unused_data
        # Members follow one another; trailing zero padding is tolerated, as gzip(1) does.
        if not rest.strip(b"\0"):
            return b"".join(out)


def _deflate(body: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    try:
        _run(zlib.decompressobj(_ZLIB), body, out, 0, limit)
    except MaskingError as exc:
        if exc.code != "invalid_encoding" or out:
            raise
        out.clear()
        _run(zlib.decompressobj(_RAW), body, out, 0, limit)
    return b"".join(out)


def _run(decoder: zlib._Decompress, data: bytes, out: list[bytes], size: int, limit: int) -> int:
    """Feed ``data``, collecting at most ``limit`` bytes in all; the new total."""
    try:
        while True:
            chunk = decoder.decompress(data, CHUNK)
            size += len(chunk)
            if size > limit:
                out.clear()
                raise MaskingError(
                    "the body inflates beyond the inspection limit", code=Code.DECOMPRESSION_LIMIT
                )
            out.append(chunk)
            data = decoder.unconsumed_tail
            if decoder.eof or (not data and not chunk):
                break
    except zlib.error:
        raise MaskingError("the compressed body is corrupt", code=Code.INVALID_ENCODING) from None
    if not decoder.eof:
        raise MaskingError("the compressed body is truncated", code=Code.INVALID_ENCODING)
    return size
