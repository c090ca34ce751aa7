"""Line framing for streamed bodies, and the way out when a frame never ends.

``LineReader`` splits bytes into lines at LF, CRLF or a lone CR (the three line endings SSE
allows), keeping each terminator; a CR at the very end of what arrived waits for the next
byte, which may be its LF. It never copies what it already scanned.

A frame (an SSE event, an NDJSON line) that passes the size cap without ending is not buffered
further: ``Overflow`` masks its bytes as text, holding back only the tail that could still be
part of a match, until the frame ends. An SSE event whose JSON is cut inside a string value
is first split there instead (``split_open_string``), so its delta stays in its dialect's
stream.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

from extproc.masking.results import Finding
from extproc.masking.textstream import TextStreamMasker

if TYPE_CHECKING:
    from extproc.masking.engine import Masker

MAX_FRAME_BYTES = 64 * 1024
_EOL = re.compile(rb"\r\n|\r|\n")


class LineReader:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # no line ending before this offset of the buffer

    @property
    def partial(self) -> int:
        """Bytes of the line not yet ended."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        """Complete (line, terminator) pairs."""
        if not self._buffer and b"\r" not in chunk:
            # The common case, a chunk of whole LF-ended lines: split it without the buffer.
            *whole, rest = chunk.split(b"\n")
            self._buffer += rest
            self._scanned = max(0, len(rest) - 1)
            return [(line, b"\n") for line in whole]
        self._buffer += chunk
        lines: list[tuple[bytes, bytes]] = []
        position = 0
        for match in _EOL.finditer(self._buffer, self._scanned):
            if match.end() == len(self._buffer) and match.group() == b"\r":
                break  # maybe the first half of CRLF
            lines.append((bytes(self._buffer[position : match.start()]), match.group()))
            position = match.end()
        if position:
            del self._buffer[:position]
        self._scanned = max(0, len(self._buffer) - 1)
        return lines

    def peek(self) -> bytes:
        """The unended line so far, left where it is."""
        return bytes(self._buffer)

    def replace(self, partial: bytes) -> None:
        """Make ``partial`` the unended line (what was taken of it has gone out)."""
        self._buffer[:] = partial
        self._scanned = max(0, len(partial) - 1)

    def take(self) -> bytes:
        """The unended line so far (but a final CR, which may start a CRLF)."""
        keep = 1 if self._buffer.endswith(b"\r") else 0
        taken = bytes(self._buffer[: len(self._buffer) - keep])
        del self._buffer[: len(taken)]
        self._scanned = 0
        return taken

    def finish(self) -> list[tuple[bytes, bytes]]:
        """What is left when the stream ends: a last line without its ending."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        if rest.endswith(b"\r"):
            return [(rest[:-1], b"\r")]
        return [(rest, b"")] if rest else []


# A JSON string (its closing quote captured when it arrived) or a bracket.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+(")?|[\[\]{}]')
_CLOSERS = {ord("{"): b"}", ord("["): b"]"}
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\Z")
_SPACE = b" \t\r\n"


def split_open_string(data: bytes) -> tuple[bytes, int, int] | None:
    """A JSON document cut inside a string value, made whole: the document closed after a
    safe point of that string (not inside an escape, a UTF-8 sequence or a surrogate pair),
    where the string starts (after its quote) and that point. None when ``data`` does not end
    inside a string value (a key, a number, whole JSON...)."""
    stack: list[int] = []
    opened = -1
    for token in _JSON_TOKEN.finditer(data):
        start = token.start()
        char = data[start]
        if char != 0x22:  # a bracket
            if char in _CLOSERS:
                stack.append(char)
            elif not stack:
                return None
            else:
                stack.pop()
        elif token.group(1) is None:
            opened = start
            break
    if opened < 0 or not stack:
        return None
    before = data[:opened].rstrip(_SPACE)[-1:]
    if not (before == b":" or (stack[-1] == 0x5B and before in (b"[", b","))):
        return None  # a key: no delta
    low = opened + 1
    cut = len(data) - 4  # a UTF-8 sequence or an escape may be incomplete at the very end
    escape = data.rfind(b"\\", max(low, cut - 12), cut)
    if escape >= 0:  # cut before the run of backslashes: never inside an escape
        cut = escape
        while cut > low and data[cut - 1] == 0x5C:
            cut -= 1
    while cut > low and data[cut] & 0xC0 == 0x80:
        cut -= 1
    if _HIGH_SURROGATE.search(data, low, cut) is not None:
        cut -= 6
    if cut <= low:
        return None
    closers = b"".join(_CLOSERS[char] for char in reversed(stack))
    return data[:cut] + b'"' + closers, low, cut


class Overflow:
    """The bytes of an oversized frame, masked as text as they come."""

    def __init__(self, masker: Masker, direction: str, findings: list[Finding]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = TextStreamMasker(masker, direction, "stream:overflow", findings)

    def feed(self, raw: bytes) -> bytes:
        return self._text.feed(self._decoder.decode(raw)).encode("utf-8")

    def finish(self) -> bytes:
        rest = self._text.feed(self._decoder.decode(b"", final=True)) + self._text.finish()
        return rest.encode("utf-8")
