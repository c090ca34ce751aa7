"""Mask a stream of JSON events (SSE ``data:`` payloads, NDJSON lines), one event at a time.

Each event's deltas (``dialects``) feed a text stream per key, which holds back only what could
still become part of a match; the delta field carries what is final. Every other string, key
and number of the event is masked whole, so an event of a dialect nobody named still carries
no raw value. When an event ends a text (``finish_reason``, ``content_block_stop``,
``*.done``...), the held rest goes out in that event's own delta, or, if it has none, in one
more event of the same dialect sent just before it. ``flush`` does the same for every text
still open (before ``[DONE]``, or when the stream ends or is cut).

In the response direction an event's ``logprobs`` (each chat or completions choice's, a
Responses event's) are emptied before anything else: they spell the streamed text again, token
by token, where no text stream reads it. Emptied here they are no finding (a stream has one
per event); any other ``logprobs`` the event holds is emptied by the walk (``walk``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from extproc.masking.dialects import Key, flush_event, read_event
from extproc.masking.jsondoc import loads, parse_lenient
from extproc.masking.results import Finding
from extproc.masking.textstream import TextStreamMasker
from extproc.masking.walk import LOGPROBS_DIRECTION

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

CLEAN_SHAPES = 64  # per stream: its events come in a handful of shapes
SHAPE_BYTES = 2048  # larger events are walked each time (the set must stay small)
Event = tuple[str, Any]  # (SSE event name or "", the JSON value to send)


@dataclass(slots=True)
class _Text:
    stream: TextStreamMasker
    last: dict[str, Any]
    name: str


class EventMasker:
    def __init__(self, masker: Masker, direction: str, findings: list[Finding]) -> None:
        self._masker = masker
        self._direction = direction
        self.findings = findings
        self._texts: dict[Key, _Text] = {}
        self._clean_shapes: set[bytes] = set()  # events (deltas blanked) that held nothing
        self._drops_logprobs = direction == LOGPROBS_DIRECTION and not masker.report

    def mask(self, event: Any, name: str = "", *, final: bool = True) -> list[Event]:
        """The events to send for this one, in order: flush events, then the event masked.
        ``final=False``: the event is the first part of one too large to buffer (its delta
        cut short, ``sse``): it ends no text, whatever it says."""
        if not isinstance(event, dict):
            return [(name, self._masker.mask_json_value(event, self._direction, self.findings))]
        if self._drops_logprobs:
            _drop_logprobs(event)
        reading = read_event(event)
        pieces = [(delta, delta.holder[delta.field]) for delta in reading.deltas]
        for delta in reading.deltas:
            delta.holder[delta.field] = ""  # streamed: kept out of the whole-value walk
        masked = self._masked_whole(event)
        ends = reading.ends if final else None
        last_piece = {delta.key: number for number, (delta, _) in enumerate(pieces)}
        for number, (delta, text) in enumerate(pieces):
            held = self._texts.get(delta.key)
            if held is None:
                stream = TextStreamMasker(
                    self._masker, self._direction, f"stream:{delta.location}", self.findings
                )
                held = self._texts[delta.key] = _Text(stream, masked, name)
            out = held.stream.feed(text)
            if ends is not None and ends(delta.key) and last_piece[delta.key] == number:
                out += held.stream.finish()
            delta.holder[delta.field] = out
            held.last, held.name = masked, name
        sent: list[Event] = []
        if ends is not None:
            for key in [key for key in self._texts if ends(key)]:
                text = self._texts.pop(key)
                if key not in last_piece:
                    sent.extend(self._flushed(key, text))
        sent.append((name, masked))
        return sent

    def _masked_whole(self, event: dict[str, Any]) -> Any:
        """The event with every string, key and number but its deltas masked. A stream repeats
        one shape (ids, model, indices) around its deltas: a shape already walked without a
        finding is sent as it is, since a walk that finds nothing changes nothing. The shape
        is the event's JSON, which tells apart every value the walk reads differently."""
        try:
            shape: bytes | None = orjson.dumps(event)
        except TypeError:  # what orjson cannot write (kept duplicates, huge integers)
            shape = None
        if shape is not None and shape in self._clean_shapes:
            return event
        before = len(self.findings)
        masked = self._masker.mask_json_value(event, self._direction, self.findings)
        if shape is not None and len(shape) <= SHAPE_BYTES and len(self.findings) == before:
            if len(self._clean_shapes) >= CLEAN_SHAPES:
                self._clean_shapes.clear()
            self._clean_shapes.add(shape)
        return masked

    def flush(self) -> list[Event]:
        """Every text still held, each in one more event of its dialect."""
        sent: list[Event] = []
        for key, text in self._texts.items():
            sent.extend(self._flushed(key, text))
        self._texts.clear()
        return sent

    def _flushed(self, key: Key, text: _Text) -> list[Event]:
        rest = text.stream.finish()
        return [(text.name, flush_event(key, rest, text.last))] if rest else []


def _drop_logprobs(event: dict[str, Any]) -> None:
    logprobs = event.get("logprobs")
    if logprobs:
        event["logprobs"] = [] if isinstance(logprobs, list) else None
    choices = event.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("logprobs"):
            choice["logprobs"] = None


_MISSING = object()


def parse_event(data: bytes) -> Any:
    """A JSON object or array event (a duplicate key parsed keeping every member), or None for
    anything else: a stream of plain text, or of bare JSON scalars, is text."""
    start = data[:1]
    if start not in (b"{", b"[") and data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        document = loads(data)
    except (ValueError, RecursionError):
        document = _MISSING
    if document is not _MISSING and _single_members(data, document):
        return document
    try:
        return parse_lenient(data.decode("utf-8", "replace"), strict=False)
    except ValueError:
        return None


def _single_members(data: bytes, document: Any) -> bool:
    """No duplicate key was dropped: orjson writes ``:`` unescaped, one per member plus those
    in strings, so writing the parsed event back gives the data's count (plus its escaped
    colons) unless a member, and its colon, went missing."""
    try:
        written = orjson.dumps(document)
    except TypeError:
        return False
    escaped = data.count(b"\\u003a") + data.count(b"\\u003A") if b"\\" in data else 0
    return data.count(b":") + escaped == written.count(b":")
