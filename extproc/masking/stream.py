"""Masking of streamed text and of OpenAI-style SSE chat completions.

A value can be split across two network chunks or two ``data:`` events ("4111 1111" then
" 1111 1111"). The stream masker therefore holds back the tail of the text that could still
become part of a match: a match that reaches the end of what arrived, the last few words (every
built-in pattern spans at most a few space-separated groups), and an unterminated private-key
block. Everything before that point is final: it is masked and emitted; the held tail goes out
with the next event, or at the end of the stream. No part of a detected value is ever emitted
unmasked. Every output event is valid SSE carrying valid JSON.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from extproc.masking.engine import Finding, Masker

HOLD_WORDS = 8
MAX_HOLD_CHARS = 512
MAX_KEY_BLOCK_CHARS = 16_384
_TAIL = re.compile(rf"(?:\S*\s+){{0,{HOLD_WORDS - 1}}}\S*$")
_KEY_BEGIN = "-----BEGIN"


class TextStreamMasker:
    def __init__(self, masker: Masker, direction: str, location: str = "stream") -> None:
        self._masker = masker
        self._direction = direction
        self._location = location
        self._pending = ""
        self._emitted = 0
        self.findings: list[Finding] = []

    def feed(self, text: str) -> str:
        text = self._pending + text
        cut = self._safe_cut(text)
        self._pending = text[cut:]
        return self._mask(text[:cut])

    def finish(self) -> str:
        text, self._pending = self._pending, ""
        return self._mask(text)

    def _mask(self, text: str) -> str:
        if not text:
            return ""
        where = f"{self._location}@{self._emitted}"
        self._emitted += len(text)
        return self._masker.mask_text(text, self._direction, where, self.findings)

    def _safe_cut(self, text: str) -> int:
        cut = len(text)
        begin = text.rfind(_KEY_BEGIN)
        if (
            begin >= 0
            and "-----END" not in text[begin:]
            and len(text) - begin < MAX_KEY_BLOCK_CHARS
        ):
            cut = begin
        tail = _TAIL.search(text, max(0, len(text) - MAX_HOLD_CHARS))
        if tail is not None:
            cut = min(cut, tail.start())
        for start, end, _type in self._masker.spans(text):
            if start < cut < end or end == len(text):
                cut = min(cut, start)
        return cut


class SseMasker:
    """Feed the response body chunks as they arrive; emit masked SSE."""

    def __init__(self, masker: Masker, direction: str) -> None:
        self._masker = masker
        self._direction = direction
        self._buffer = b""
        self._choices: dict[int, TextStreamMasker] = {}
        self._last: dict[str, Any] | None = None
        self.findings: list[Finding] = []

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            end, size = _event_end(self._buffer)
            if end < 0:
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + size :]
            out.append(self._event(raw))
        return b"".join(out)

    def finish(self) -> bytes:
        out = b""
        if self._buffer.strip():
            raw, self._buffer = self._buffer, b""
            out += self._event(raw.rstrip(b"\r\n"))
        return out + self._flush_event()

    def all_findings(self) -> list[Finding]:
        found = list(self.findings)
        for stream in self._choices.values():
            found.extend(stream.findings)
        return found

    # -- events -------------------------------------------------------------------------------
    def _event(self, raw: bytes) -> bytes:
        lines = raw.replace(b"\r\n", b"\n").split(b"\n")
        data_lines = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        other = [line for line in lines if not line.startswith(b"data:")]
        if not data_lines:
            return raw + b"\n\n"
        data = b"\n".join(data_lines)
        prefix = b"".join(line + b"\n" for line in other)
        if data.strip() == b"[DONE]":
            return self._flush_event() + prefix + b"data: [DONE]\n\n"
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data.decode("utf-8", "replace")
            masked = self._masker.mask_text(text, self._direction, "stream:event", self.findings)
            data_out = b"".join(b"data: " + line.encode() + b"\n" for line in masked.split("\n"))
            return prefix + data_out + b"\n"
        if isinstance(event, dict):
            masked_event = self._mask_chat_chunk(event)
            self._last = masked_event
        else:
            masked_event = self._masker.mask_json_value(event, self._direction, self.findings)
        return prefix + b"data: " + orjson.dumps(masked_event) + b"\n\n"

    def _mask_chat_chunk(self, event: dict[str, Any]) -> dict[str, Any]:
        """Stream-mask each choice's delta.content; mask every other string of the event whole
        (tool call arguments, refusals)."""
        choices = event.get("choices")
        contents: dict[int, str] = {}
        if isinstance(choices, list):
            for position, choice in enumerate(choices):
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                index = choice.get("index", position)
                stream = self._choices.get(index)
                if stream is None:
                    stream = TextStreamMasker(
                        self._masker, self._direction, f"stream:choices[{index}]"
                    )
                    self._choices[index] = stream
                content = delta.pop("content", None)
                text = stream.feed(content) if isinstance(content, str) else ""
                if choice.get("finish_reason"):
                    text += stream.finish()
                if isinstance(content, str) or text:
                    contents[position] = text
        masked: dict[str, Any] = self._masker.mask_json_value(event, self._direction, self.findings)
        for position, text in contents.items():
            masked["choices"][position]["delta"]["content"] = text
        return masked

    def _flush_event(self) -> bytes:
        """Emit what is still held back, as one more chunk event before the stream ends."""
        held = {index: stream.finish() for index, stream in self._choices.items()}
        held = {index: text for index, text in held.items() if text}
        if not held:
            return b""
        base = self._last or {"object": "chat.completion.chunk"}
        event = {key: value for key, value in base.items() if key != "choices"}
        event["choices"] = [
            {"index": index, "delta": {"content": text}, "finish_reason": None}
            for index, text in sorted(held.items())
        ]
        return b"data: " + orjson.dumps(event) + b"\n\n"


def _event_end(buffer: bytes) -> tuple[int, int]:
    lf = buffer.find(b"\n\n")
    crlf = buffer.find(b"\r\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2
