"""Streamed bodies: pick the masker for a content type, feed it chunks as they arrive.

``stream_masker`` returns a ``StreamMasker``: ``feed(chunk)`` gives the bytes that may go out
now (masked; a value split across chunks or events is held until it is complete), ``finish()``
the rest at the end of the stream, and ``findings`` is complete at every moment (an endless or
cut stream is audited with what it carried so far).

- ``text/event-stream``: ``sse.SseMasker`` (OpenAI chat and Responses, legacy completions,
  Anthropic, Gemini, unknown JSON events, plain ``data:`` text; any line ending);
- NDJSON (``application/x-ndjson`` and its aliases): ``ndjson.NdjsonMasker`` (Ollama);
- anything else: ``TextBodyMasker``, the body as one text (UTF-8; invalid bytes read as
  U+FFFD, and are sent as such).
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Protocol

from extproc.masking.bodies import LINE_TYPES
from extproc.masking.forms import media_type
from extproc.masking.framing import MAX_FRAME_BYTES
from extproc.masking.ndjson import NdjsonMasker
from extproc.masking.results import Finding
from extproc.masking.sse import SseMasker
from extproc.masking.textstream import TextStreamMasker

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

__all__ = ["NdjsonMasker", "SseMasker", "StreamMasker", "TextBodyMasker", "TextStreamMasker",
           "stream_masker"]  # fmt: skip


class StreamMasker(Protocol):
    findings: list[Finding]

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def all_findings(self) -> list[Finding]: ...


def stream_masker(
    content_type: str, masker: Masker, direction: str, *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> StreamMasker:
    kind, _ = media_type(content_type)
    if kind == "text/event-stream":
        return SseMasker(masker, direction, max_event_bytes=max_frame_bytes)
    if kind in LINE_TYPES:
        return NdjsonMasker(masker, direction, max_line_bytes=max_frame_bytes)
    return TextBodyMasker(masker, direction)


class TextBodyMasker:
    """A streamed body read as one text, decoded incrementally (a character split across
    chunks waits for its last byte)."""

    def __init__(self, masker: Masker, direction: str) -> None:
        self.findings: list[Finding] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = TextStreamMasker(masker, direction, "stream", self.findings)

    def all_findings(self) -> list[Finding]:
        return list(self.findings)

    def feed(self, chunk: bytes) -> bytes:
        return self._text.feed(self._decoder.decode(chunk)).encode("utf-8")

    def finish(self) -> bytes:
        rest = self._text.feed(self._decoder.decode(b"", final=True)) + self._text.finish()
        return rest.encode("utf-8")
