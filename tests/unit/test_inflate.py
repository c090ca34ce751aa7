"""Bounded decompression: bombs stop at the cap without the memory they ask for."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest

from extproc.masking.engine import MaskingError
from extproc.masking.inflate import inflate

MiB = 1024 * 1024


def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip stream of ``inflated_mib`` MiB of zeros, built without holding them: one MiB is
    compressed once after a full flush (which resets the history), so every following MiB
    compresses to the same bytes and is repeated. The trailer is left off: nothing that
    honours a limit reads that far."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * (inflated_mib - 1)


def test_a_1_mb_gzip_that_inflates_to_1_gib_stops_at_the_cap_in_little_memory() -> None:
    bomb = gzip_bomb(1024)
    assert len(bomb) < 1.1 * MiB
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(MaskingError) as caught:
        inflate(bomb, "gzip", max_bytes=8 * MiB, max_ratio=10_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert caught.value.code == "decompression_limit"
    assert peak < 16 * MiB
    assert time.monotonic() - started < 2


def test_the_ratio_limit_stops_a_small_bomb_under_the_byte_cap() -> None:
    body = gzip.compress(bytes(MiB))
    with pytest.raises(MaskingError) as caught:
        inflate(body, "gzip", max_bytes=64 * MiB, max_ratio=100)
    assert caught.value.code == "decompression_limit"
    assert inflate(body, "gzip", max_bytes=64 * MiB, max_ratio=2000) == bytes(MiB)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some servers send it
        ("identity", lambda data: data),
        ("", lambda data: data),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
)
def test_supported_codings_round_trip(encoding: str, encode: object) -> None:
    data = b'{"q": "card 4111 1111 1111 1111"}' * 100
    assert inflate(encode(data), encoding, max_bytes=MiB, max_ratio=1000) == data  # type: ignore[operator]


def test_gzip_members_are_decoded_one_after_the_other() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    assert inflate(body, "gzip", max_bytes=MiB, max_ratio=100) == b"first second"


@pytest.mark.parametrize(
    ("body", "encoding", "code"),
    [
        (b"not gzip at all", "gzip", "invalid_encoding"),
        (gzip.compress(b"x" * 1000)[:-12], "gzip", "invalid_encoding"),
        (b"\x78\x9c garbage", "deflate", "invalid_encoding"),
        (b"anything", "br", "unsupported_encoding"),
        (b"anything", "compress", "unsupported_encoding"),
    ],
)
def test_corrupt_and_unknown_encodings_are_refused(body: bytes, encoding: str, code: str) -> None:
    with pytest.raises(MaskingError) as caught:
        inflate(body, encoding, max_bytes=MiB, max_ratio=100)
    assert caught.value.code == code
