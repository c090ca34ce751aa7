"""Mask a ``text/event-stream`` response as it streams.

Events end at a blank line, whatever the line endings (LF, CRLF, CR). An event's ``data:``
lines are joined: a JSON object or array is masked by ``events`` (the dialect's deltas as text
streams, everything else whole); ``[DONE]`` first sends every held text; anything else is a
plain text stream, its pieces held back like any other delta. Other lines (``event:``, ``id:``,
comments) are masked as text. Every event sent is valid SSE, its data valid JSON where it was.

An event that passes ``max_event_bytes`` without ending is masked as text from there to its
end (``framing.Overflow``): a stream without delimiters is never buffered without limit.
Findings are counted as they are made: ``findings`` is complete at any moment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from extproc.masking.events import EventMasker, parse_event
from extproc.masking.framing import MAX_FRAME_BYTES, LineReader, Overflow
from extproc.masking.jsondoc import dumps
from extproc.masking.results import Finding
from extproc.masking.textstream import TextStreamMasker

if TYPE_CHECKING:
    from extproc.masking.engine import Masker


class SseMasker:
    """Feed the response body chunks as they arrive; emit masked SSE."""

    def __init__(
        self, masker: Masker, direction: str, *, max_event_bytes: int = MAX_FRAME_BYTES
    ) -> None:
        self._masker = masker
        self._direction = direction
        self._max = max_event_bytes
        self.findings: list[Finding] = []
        self._events = EventMasker(masker, direction, self.findings)
        self._text = TextStreamMasker(masker, direction, "stream:data", self.findings)
        self._reader = LineReader()
        self._lines: list[bytes] = []
        self._raw = 0  # bytes of the current event so far
        self._overflow: Overflow | None = None
        self._overflow_line = False  # the oversized event's current line has begun

    def all_findings(self) -> list[Finding]:
        return list(self.findings)

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for line, ending in self._reader.feed(chunk):
            self._line(line, ending, out)
        if self._overflow is not None:
            self._overflow_line = self._overflow_line or self._reader.partial > 0
            out.append(self._overflow.feed(self._reader.take()))
        elif self._raw + self._reader.partial > self._max:
            self._start_overflow(out)
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        for line, ending in self._reader.finish():
            self._line(line, ending, out)
        if self._overflow is not None:
            out.append(self._overflow.finish())
            self._overflow = None
            out.append(b"\n\n")
        elif self._lines:
            out.append(self._event(self._lines))
            self._lines = []
        out.append(self._flush())
        return b"".join(out)

    # -- framing ---------------------------------------------------------------------------------
    def _line(self, line: bytes, ending: bytes, out: list[bytes]) -> None:
        if self._overflow is not None:
            out.append(self._overflow.feed(line + ending))
            if not line and not self._overflow_line:  # the blank line: the event ends
                out.append(self._overflow.finish())
                self._overflow = None
            self._overflow_line = False
            return
        if line:
            self._lines.append(line)
            self._raw += len(line) + len(ending)
            if self._raw > self._max:
                self._start_overflow(out)
            return
        if self._lines:
            out.append(self._event(self._lines))
        self._lines = []
        self._raw = 0

    def _start_overflow(self, out: list[bytes]) -> None:
        """What arrived of this event goes out as masked text; so will the rest of it."""
        self._overflow = Overflow(self._masker, self._direction, self.findings)
        out.append(self._overflow.feed(b"".join(line + b"\n" for line in self._lines)))
        self._overflow_line = self._reader.partial > 0
        out.append(self._overflow.feed(self._reader.take()))
        self._lines = []
        self._raw = 0

    # -- events ----------------------------------------------------------------------------------
    def _event(self, lines: list[bytes]) -> bytes:
        data: list[bytes] = []
        prefix: list[bytes] = []
        name = ""
        for line in lines:
            field, colon, value = line.partition(b":")
            value = value[1:] if colon and value.startswith(b" ") else value
            if field == b"data":
                data.append(value)
                continue
            prefix.append(self._masked_line(line))
            if field == b"event":
                name = value.decode("utf-8", "replace")
        head = b"".join(line + b"\n" for line in prefix) if prefix else b""
        if not data:
            return head + b"\n"
        payload = b"\n".join(data) if len(data) > 1 else data[0]
        if b"[DONE]" in payload and payload.strip() == b"[DONE]":
            return self._flush() + head + b"data: [DONE]\n\n"
        document = parse_event(payload)
        if document is None:
            text = self._text.feed(payload.decode("utf-8", "replace"))
            return head + _data(text) + b"\n"
        sent = self._events.mask(document, name)
        if len(sent) == 1:  # the common case: nothing flushed before this event
            return head + b"data: " + _dump(sent[0][1]) + b"\n\n"
        flushed = b"".join(_json_event(event_name, value) for event_name, value in sent[:-1])
        return flushed + head + b"data: " + _dump(sent[-1][1]) + b"\n\n"

    def _flush(self) -> bytes:
        """Every held text, before ``[DONE]`` or the end of the stream."""
        out = [_json_event(name, value) for name, value in self._events.flush()]
        rest = self._text.finish()
        if rest:
            out.append(_data(rest) + b"\n")
        return b"".join(out)

    def _masked_line(self, line: bytes) -> bytes:
        text = line.decode("utf-8", "replace")
        return self._masker.mask_text(text, self._direction, "stream:field", self.findings).encode()


def _data(text: str) -> bytes:
    return b"".join(b"data: " + line.encode("utf-8") + b"\n" for line in text.split("\n"))


def _json_event(name: str, value: Any) -> bytes:
    head = b"event: " + name.encode("utf-8") + b"\n" if name else b""
    return head + b"data: " + _dump(value) + b"\n\n"


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return dumps(value)
