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

A content type that lists several media types (``text/event-stream, text/plain``: two headers
merged) is the event stream if any of them is: SDKs parse the body as SSE whatever the label.
For the same reason a body that arrives whole (buffered, under any label) but reads as an event
stream (``sniff_stream``: after an optional BOM and whitespace, an SSE field line or comment;
or NDJSON lines of streamed chat chunks) is masked by the stream's masker
(``mask_buffered_stream``), so its deltas are joined as a client joins them.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Protocol

from extproc.masking.bodies import LINE_TYPES
from extproc.masking.dialects import read_event
from extproc.masking.events import parse_event
from extproc.masking.forms import media_type
from extproc.masking.framing import MAX_FRAME_BYTES
from extproc.masking.ndjson import NdjsonMasker
from extproc.masking.results import Finding
from extproc.masking.sse import SseMasker
from extproc.masking.textstream import TextStreamMasker

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

__all__ = ["NdjsonMasker", "SseMasker", "StreamMasker", "TextBodyMasker", "TextStreamMasker",
           "mask_buffered_stream", "sniff_stream", "stream_masker", "streamed_kind"]  # fmt: skip

EVENT_STREAM = "text/event-stream"
NDJSON = "application/x-ndjson"
# An SSE field line (a name, then a colon or the line's end) or a comment, after an optional
# BOM and whitespace.
_SSE_START = re.compile(rb"(?:\xef\xbb\xbf)?\s*(?:(?:data|event|id|retry)(?::|\r|\n|\Z)|:)")
_SNIFF_LINE_BYTES = 64 * 1024


class StreamMasker(Protocol):
    findings: list[Finding]

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def all_findings(self) -> list[Finding]: ...


def stream_masker(
    content_type: str, masker: Masker, direction: str, *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> StreamMasker:
    kind = streamed_kind(content_type)
    if kind == EVENT_STREAM:
        return SseMasker(masker, direction, max_event_bytes=max_frame_bytes)
    if kind:
        return NdjsonMasker(masker, direction, max_line_bytes=max_frame_bytes)
    return TextBodyMasker(masker, direction)


def streamed_kind(content_type: str) -> str:
    """The stream a content type announces: ``text/event-stream`` if any of its media types is
    that, else the NDJSON type it names, else ``""`` (none)."""
    kinds = [media_type(part)[0] for part in content_type.split(",")]
    if EVENT_STREAM in kinds:
        return EVENT_STREAM
    return next((kind for kind in kinds if kind in LINE_TYPES), "")


def sniff_stream(body: bytes) -> str:
    """``text/event-stream`` if a body reads as SSE, ``application/x-ndjson`` if it is JSON
    lines of which the first is a streamed event with a delta (Ollama, chat chunks), else
    ``""``."""
    if _SSE_START.match(body) is not None:
        return EVENT_STREAM
    start = body.lstrip()
    if start[:1] != b"{":
        return ""
    first, newline, rest = start[:_SNIFF_LINE_BYTES].partition(b"\n")
    if not newline or not rest.lstrip().startswith(b"{"):
        return ""
    event = parse_event(first)
    if isinstance(event, dict) and read_event(event).deltas:
        return NDJSON
    return ""


def mask_buffered_stream(
    masker: Masker, body: bytes, kind: str, direction: str
) -> tuple[bytes, list[Finding]]:
    """A whole body masked as the stream ``kind`` (``sniff_stream``): the body to send and the
    findings (the body unchanged when nothing was found, or in report mode)."""
    stream = stream_masker(kind, masker, direction)
    # What precedes the first field (a BOM, blank lines, spaces) is dropped: a client reading
    # line by line may strip it, and must then read masked lines.
    out = stream.feed(body.removeprefix(b"\xef\xbb\xbf").lstrip()) + stream.finish()
    if not stream.findings or masker.report:
        return body, stream.findings
    return out, stream.findings


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
