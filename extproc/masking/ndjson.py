"""Mask an NDJSON response (``application/x-ndjson``: Ollama, and JSON-lines APIs) as it streams.

One JSON document per line: each is masked by ``events`` (Ollama's ``message.content`` /
``response`` as text streams held back only where a value may continue, everything else
whole), and held text goes out in one more line of the same shape before ``done: true`` or at
the end. A line that is not JSON is masked whole as text. A line that passes
``max_line_bytes`` without ending is masked as text until it ends (``framing.Overflow``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extproc.masking.events import EventMasker, parse_event
from extproc.masking.framing import MAX_FRAME_BYTES, LineReader, Overflow
from extproc.masking.jsondoc import dumps
from extproc.masking.results import Finding

if TYPE_CHECKING:
    from extproc.masking.engine import Masker


class NdjsonMasker:
    def __init__(
        self, masker: Masker, direction: str, *, max_line_bytes: int = MAX_FRAME_BYTES
    ) -> None:
        self._masker = masker
        self._direction = direction
        self._max = max_line_bytes
        self.findings: list[Finding] = []
        self._events = EventMasker(masker, direction, self.findings)
        self._reader = LineReader()
        self._overflow: Overflow | None = None

    def all_findings(self) -> list[Finding]:
        return list(self.findings)

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for line, ending in self._reader.feed(chunk):
            if self._overflow is not None:
                out.append(self._overflow.feed(line + ending) + self._overflow.finish())
                self._overflow = None
            else:
                out.append(self._line(line, ending))
        if self._overflow is None and self._reader.partial > self._max:
            self._overflow = Overflow(self._masker, self._direction, self.findings)
        if self._overflow is not None:
            out.append(self._overflow.feed(self._reader.take()))
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        for line, ending in self._reader.finish():
            if self._overflow is not None:
                out.append(self._overflow.feed(line + ending))
            else:
                out.append(self._line(line, ending))
        if self._overflow is not None:
            out.append(self._overflow.finish())
            self._overflow = None
        out.extend(dumps(value) + b"\n" for _, value in self._events.flush())
        return b"".join(out)

    def _line(self, line: bytes, ending: bytes) -> bytes:
        if not line.strip():
            return line + ending
        document = parse_event(line)
        if document is None:
            text = line.decode("utf-8", "replace")
            masked = self._masker.mask_text(text, self._direction, "stream:line", self.findings)
            return masked.encode("utf-8") + ending
        sent = self._events.mask(document)
        return b"".join(dumps(value) + (ending or b"\n") for _, value in sent)
