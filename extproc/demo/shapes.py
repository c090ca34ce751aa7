"""How the demo model shapes a streamed reply when asked to (``x-demo-*`` request headers).

Real models and the proxies in front of them stream in ways a gateway must survive; the demo
reproduces them on request so a user (and the end-to-end tests) can watch masking hold:

- ``x-demo-line-ending: cr | crlf``: SSE lines end with a lone CR or CRLF instead of LF;
- ``x-demo-chunk-chars: N``: N characters of text per event (default: the model's, a few);
- ``x-demo-fill-bytes: N``: the reply goes on with harmless text until N characters;
- ``x-demo-no-delimiters: 1``: SSE without the blank lines that end events (one endless event);
- ``x-demo-hold-after-bytes: N``: after N bytes the stream pauses until the model is told to go
  on (``DemoModel.resume``) or 15 s pass: the client can check what it got meanwhile;
- ``x-demo-endless: 1``: the reply repeats until the client goes away (at most two minutes);
- ``x-demo-content-type: T``: the stream is labelled ``T`` (``none``: no content type at all),
  as a misconfigured server or proxy labels it; SDKs parse it as a stream all the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import count

from extproc.demo.dialects import pieces

FILLER = "Nothing sensitive here, just the model talking on. "
ENDLESS_SECONDS = 120.0
HOLD_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class StreamShape:
    eol: bytes = b"\n"
    chunk_chars: int | None = None
    fill_chars: int = 0
    no_delimiters: bool = False
    hold_after_bytes: int = 0
    endless: bool = False
    content_type: str | None = None  # None: the dialect's own; "": no header

    def label(self, default: str) -> str:
        """The content type to send ("": none)."""
        return default if self.content_type is None else self.content_type

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> StreamShape:
        ending = headers.get("x-demo-line-ending", "").lower()
        return cls(
            eol={"cr": b"\r", "crlf": b"\r\n"}.get(ending, b"\n"),
            chunk_chars=_number(headers.get("x-demo-chunk-chars")) or None,
            fill_chars=_number(headers.get("x-demo-fill-bytes")),
            no_delimiters=headers.get("x-demo-no-delimiters") == "1",
            hold_after_bytes=_number(headers.get("x-demo-hold-after-bytes")),
            endless=headers.get("x-demo-endless") == "1",
            content_type=_label(headers.get("x-demo-content-type")),
        )

    def parts(self, text: str, size: int) -> Iterator[str]:
        """The pieces of the streamed text."""
        step = self.chunk_chars or size
        if self.endless:
            for _ in count():
                yield from pieces(text + " ", step)
        yield from pieces(text, step)
        if self.fill_chars > len(text):
            filler = FILLER * (max(len(FILLER), step) // len(FILLER) + 1)
            left = self.fill_chars - len(text)
            while left > 0:
                piece = filler[: min(step, left)]
                left -= len(piece)
                yield piece

    def frame(self, frame: bytes) -> bytes:
        if self.no_delimiters:
            return frame.replace(self.eol + self.eol, self.eol)
        return frame


def _number(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _label(value: str | None) -> str | None:
    if value is None:
        return None
    return "" if value.strip().lower() == "none" else value
