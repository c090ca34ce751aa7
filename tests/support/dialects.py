"""Reading a streamed reply back the way a client of each API does: split the frames, then
reassemble the deltas of the dialect (``kind``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Case:
    path: str  # under the model's /v1/ (the gateway's /eu/v1/)
    model: str
    kind: str
    fields: dict[str, Any] = field(default_factory=lambda: {"messages": MESSAGES})


LEAKY_CASES = [
    Case("/v1/chat/completions", "demo-leaky", "chat"),
    Case("/v1/chat/completions", "demo-leaky-tools", "tools"),
    Case("/v1/chat/completions", "demo-leaky-plain", "plain"),
    Case("/v1/responses", "demo-leaky", "responses", {"input": "hi"}),
    Case("/v1/completions", "demo-leaky", "completions", {"prompt": "hi"}),
    Case("/v1/messages", "demo-leaky", "anthropic", {"messages": MESSAGES, "max_tokens": 9}),
    Case("/v1/api/chat", "demo-leaky", "ollama"),
]


def frames_of(raw: bytes, ndjson: bool) -> list[Any]:
    """NDJSON lines, or each SSE event's data (any line ending): JSON where it is JSON."""
    if ndjson:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    out: list[Any] = []
    for event in raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n"):
        data = b"\n".join(line[6:] for line in event.split(b"\n") if line.startswith(b"data: "))
        if data and data != b"[DONE]":
            out.append(json.loads(data) if data.startswith(b"{") else data.decode())
    return out


def text_of(kind: str, events: list[Any]) -> str:
    """What a client of that API reassembles from the stream's deltas."""
    pieces: list[str] = []
    for event in events:
        if kind == "plain":
            pieces.append(event)
        elif kind in ("chat", "tools", "completions"):
            for choice in event.get("choices", []):
                pieces.append(_choice_text(kind, choice))
        elif kind == "responses" and event.get("type") == "response.output_text.delta":
            pieces.append(event["delta"])
        elif kind == "anthropic" and event.get("type") == "content_block_delta":
            pieces.append(event["delta"]["text"])
        elif kind == "ollama":
            pieces.append(event["message"]["content"])
    text = "".join(pieces)
    return str(json.loads(text)["query"]) if kind == "tools" else text


def _choice_text(kind: str, choice: dict[str, Any]) -> str:
    if kind == "completions":
        return str(choice.get("text") or "")
    if kind == "chat":
        return str(choice["delta"].get("content") or "")
    calls = choice["delta"].get("tool_calls") or []
    return "".join(str(call["function"].get("arguments") or "") for call in calls)
