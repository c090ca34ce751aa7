"""Mask a ``text/event-stream`` response as it streams.

Events end at a blank line, whatever the line endings (LF, CRLF, CR). An event's ``data:``
lines are joined: a JSON object or array is masked by ``events`` (the dialect's deltas as text
streams, everything else whole); ``[DONE]`` first sends every held text; anything else is a
plain text stream, its pieces held back like any other delta. Other lines (``event:``, ``id:``,
comments) are masked as text. Every event sent is valid SSE, its data valid JSON where it was.

A client may join an event's ``data:`` lines with a newline (the spec) or with nothing (many
line-by-line readers): the plain text stream reads both ways (``TextStreamMasker`` with
``lines``), so a value cut over several lines is found either way and masked whole.

No event is buffered past ``max_event_bytes`` (a stream without delimiters is one endless
event). What passes it goes on as it comes, still read as its client reads it:

- plain ``data:`` text: the event's lines from there on stream through the plain text stream,
  line by line (a longer line in pieces), without waiting for the event's end;
- a JSON event cut inside a string value (a long delta): the part so far is closed after a
  safe point of that string (``framing.split_open_string``) and sent as one event of its own,
  its delta fed to its dialect's stream, which holds back across the cut as across any two
  events; the rest of the event is buffered again from that string's start;
- anything else (JSON cut elsewhere, a huge field line): masked as text to its end
  (``framing.Overflow``).

A UTF-8 byte order mark at the start of the stream is dropped (clients ignore it).
Findings are counted as they are made: ``findings`` is complete at any moment.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any

import orjson

from extproc.masking.dialects import read_event
from extproc.masking.events import EventMasker, parse_event
from extproc.masking.framing import MAX_FRAME_BYTES, LineReader, Overflow, split_open_string
from extproc.masking.jsondoc import dumps
from extproc.masking.results import Finding
from extproc.masking.textstream import TextStreamMasker

if TYPE_CHECKING:
    from extproc.masking.engine import Masker


_BOM = b"\xef\xbb\xbf"


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
        self._text = TextStreamMasker(masker, direction, "stream:data", self.findings, lines=True)
        self._reader = LineReader()
        self._start: bytes | None = b""  # the stream's first bytes, until a BOM is ruled out
        self._lines: list[bytes] = []
        self._raw = 0  # bytes of the current event so far
        self._overflow: Overflow | None = None
        self._overflow_line = False  # the oversized event's current line has begun
        # An oversized plain event, streamed line by line (see the module's docstring):
        self._plain = False
        self._plain_data = False  # a data line of it was read: the next one joins with "\n"
        self._open: codecs.IncrementalDecoder | None = None  # its data line read in pieces
        self._carry: str | None = None  # masked text of the last data line, still open

    def all_findings(self) -> list[Finding]:
        return list(self.findings)

    def feed(self, chunk: bytes) -> bytes:
        if self._start is not None:
            chunk = self._start + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._start = chunk
                return b""
            self._start = None
            chunk = chunk.removeprefix(_BOM)
        out: list[bytes] = []
        for line, ending in self._reader.feed(chunk):
            self._line(line, ending, out)
        if self._overflow is not None:
            self._overflow_line = self._overflow_line or self._reader.partial > 0
            out.append(self._overflow.feed(self._reader.take()))
        elif self._plain:
            self._plain_partial(out)
        elif self._raw + self._reader.partial > self._max:
            self._over_cap(out)
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        if self._start:  # fewer bytes than a BOM in all
            start, self._start = self._start, None
            out.append(self.feed(start))
        for line, ending in self._reader.finish():
            self._line(line, ending, out)
        if self._overflow is not None:
            out.append(self._overflow.finish())
            self._overflow = None
            out.append(b"\n\n")
        elif self._plain:
            if self._open is not None:
                self._plain_line(b"", b"", out)
            self._plain_line(b"", b"", out)
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
        if self._plain:
            self._plain_line(line, ending, out)
            return
        if line:
            self._lines.append(line)
            self._raw += len(line) + len(ending)
            return
        if self._lines:
            out.append(self._event(self._lines))
        self._lines = []
        self._raw = 0

    def _over_cap(self, out: list[bytes]) -> None:
        """The event passed the cap without ending: send what can go, stop buffering."""
        data = [line for line in self._lines if line.partition(b":")[0] == b"data"]
        partial = self._reader.peek()
        if not data and partial.partition(b":")[0] == b"data":
            first = _value(partial)
        else:
            first = _value(data[0]) if data else b""
        if first.lstrip()[:1] not in (b"{", b"["):
            self._plain = True
            for line in self._lines:
                self._plain_line(line, b"\n", out)
            self._lines = []
            self._raw = 0
            self._plain_partial(out)
            return
        if not data and self._split(partial, out):
            return
        if len(data) == 1 and not partial and parse_event(_value(data[0])) is not None:
            # Whole JSON, its blank line not yet come: the event is complete as it is.
            out.append(self._event(self._lines))
            self._lines = []
            self._raw = 0
            return
        self._start_overflow(out)

    def _split(self, partial: bytes, out: list[bytes]) -> bool:
        """An event whose one data line is JSON cut inside a string: send it closed there, as
        an event that ends no text, and keep the rest (the line up to that string's start,
        then what follows the cut) as the unended line."""
        value = _value(partial)
        prefix = partial[: len(partial) - len(value)]
        split = split_open_string(value)
        if split is None:
            return False
        closed, low, cut = split
        if len(prefix) + low + self._raw > self._max // 2:
            return False  # the rest would soon pass the cap again: no progress
        document = parse_event(closed)
        try:
            piece = orjson.loads(b'"' + value[low:cut] + b'"')
        except ValueError:
            return False
        if not isinstance(document, dict) or not any(
            delta.holder[delta.field] == piece for delta in read_event(document).deltas
        ):
            return False  # not a delta: its rest could not be joined to it
        head, name = self._head(self._lines)
        out.append(self._sent(head, self._events.mask(document, name, final=False)))
        self._reader.replace(prefix + value[:low] + value[cut:])
        return True

    def _start_overflow(self, out: list[bytes]) -> None:
        """What arrived of this event goes out as masked text; so will the rest of it."""
        self._overflow = Overflow(self._masker, self._direction, self.findings)
        out.append(self._overflow.feed(b"".join(line + b"\n" for line in self._lines)))
        self._overflow_line = self._reader.partial > 0
        out.append(self._overflow.feed(self._reader.take()))
        self._lines = []
        self._raw = 0

    # -- an oversized plain event ----------------------------------------------------------------
    def _plain_line(self, line: bytes, ending: bytes, out: list[bytes]) -> None:
        if self._open is not None:  # the end of a data line sent in pieces
            self._plain_text(self._open.decode(line, final=True), out)
            self._open = None
            return
        if not line:  # the event ends (or the stream does)
            if self._carry is not None:
                out.append(_data(self._carry))
                self._carry = None
            out.append(b"\n")
            self._plain = self._plain_data = False
            return
        if line.partition(b":")[0] != b"data":
            out.append(self._masked_line(line) + b"\n")
            return
        self._plain_text(self._joined(_value(line).decode("utf-8", "replace")), out)

    def _plain_partial(self, out: list[bytes]) -> None:
        """The unended line of an oversized plain event, once it is too long to wait for."""
        if self._open is None:
            if self._reader.partial <= self._max:
                return
            partial = self._reader.peek()
            if partial.partition(b":")[0] != b"data":
                self._plain = False
                self._start_overflow(out)
                return
            self._reader.take()
            self._open = codecs.getincrementaldecoder("utf-8")("replace")
            text = self._joined(self._open.decode(_value(partial)))
        else:
            text = self._open.decode(self._reader.take())
        self._plain_text(text, out)

    def _joined(self, text: str) -> str:
        joined = "\n" + text if self._plain_data else text
        self._plain_data = True
        return joined

    def _plain_text(self, text: str, out: list[bytes]) -> None:
        """Send the whole lines of what the text stream lets go; keep the last one open."""
        released = self._text.feed(text)
        if not released:
            return
        lines, newline, self._carry = ((self._carry or "") + released).rpartition("\n")
        if newline:
            out.append(_data(lines))

    # -- events ----------------------------------------------------------------------------------
    def _head(self, lines: list[bytes]) -> tuple[bytes, str]:
        """The event's other lines masked, and its name."""
        prefix: list[bytes] = []
        name = ""
        for line in lines:
            field, colon, value = line.partition(b":")
            if field == b"data":
                continue
            prefix.append(self._masked_line(line))
            if field == b"event":
                value = value[1:] if colon and value.startswith(b" ") else value
                name = value.decode("utf-8", "replace")
        return (b"".join(line + b"\n" for line in prefix) if prefix else b""), name

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
        return self._sent(head, self._events.mask(document, name))

    def _sent(self, head: bytes, sent: list[tuple[str, Any]]) -> bytes:
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


def _value(line: bytes) -> bytes:
    """A field line's value (after the colon and one space)."""
    _, colon, value = line.partition(b":")
    return value[1:] if colon and value.startswith(b" ") else value


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
