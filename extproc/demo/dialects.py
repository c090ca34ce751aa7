"""The demo model's wire formats: each streaming API it imitates, as the frames it sends.

A reply is a text cut into pieces of a few characters, so a value in it (a card, an e-mail) is
split across events the way a real model's tokens split it. Each dialect renders the same
pieces its own way:

- ``chat``: OpenAI chat completions, ``choices[0].delta.content``, or with a tool call
  ``choices[0].delta.tool_calls[0].function.arguments`` (models whose name has ``tools``);
- ``responses``: OpenAI Responses API events (``response.output_text.delta`` ...);
- ``completions``: legacy completions, ``choices[0].text``;
- ``anthropic``: Anthropic messages (``event:`` lines, ``content_block_delta`` / ``text_delta``);
- ``ollama``: Ollama ``/api/chat`` NDJSON, ``message.content``, ``done: true`` last;
- ``plain``: bare ``data: <text>`` lines (models whose name has ``plain``).

``frames`` gives a streamed reply (``replies.whole`` the same reply in one JSON document).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

DIALECTS = ("chat", "responses", "completions", "anthropic", "ollama", "plain")
TOOL_NAME = "lookup_customer"


def pieces(text: str, size: int) -> Iterator[str]:
    step = max(1, size)
    for start in range(0, len(text), step):
        yield text[start : start + step]


def tool_arguments(text: str) -> str:
    return json.dumps({"query": text})


def frames(
    dialect: str,
    model: str,
    parts: Iterable[str],
    *,
    text: str,
    eol: bytes = b"\n",
    usage: dict[str, int] | None = None,
) -> Iterator[bytes]:
    """The streamed reply, one frame (an SSE event or an NDJSON line) at a time: ``parts`` are
    the pieces of the text (lazily: a stream may be endless), ``text`` the reply the closing
    events repeat whole; ``usage`` adds OpenAI's usage chunk (``stream_options``)."""
    ident = secrets.token_hex(12)
    for name, payload in _events(dialect, model, parts, text, ident, usage):
        if dialect == "ollama":
            yield json.dumps(payload).encode() + b"\n"
        elif dialect == "plain":
            yield b"data: " + str(payload).encode() + eol + eol
        else:
            head = b"event: " + name.encode() + eol if name else b""
            data = payload if isinstance(payload, str) else json.dumps(payload)
            yield head + b"data: " + data.encode() + eol + eol


def _events(
    dialect: str,
    model: str,
    parts: Iterable[str],
    text: str,
    ident: str,
    usage: dict[str, int] | None,
) -> Iterator[tuple[str, Any]]:
    created = int(time.time())
    if dialect == "plain":
        yield from (("", piece) for piece in parts)
        yield "", "[DONE]"
    elif dialect == "chat":
        yield from _chat(model, parts, text, f"chatcmpl-{ident}", created, usage)
    elif dialect == "completions":
        for piece in parts:
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
            yield (
                "",
                {
                    "id": f"cmpl-{ident}",
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                },
            )
        done = {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
        yield (
            "",
            {
                "id": f"cmpl-{ident}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [done],
            },
        )
        yield "", "[DONE]"
    elif dialect == "responses":
        yield from _responses(model, parts, text, f"resp_{ident}")
    elif dialect == "anthropic":
        yield from _anthropic(model, parts, text, f"msg_{ident}")
    else:
        for piece in parts:
            yield (
                "",
                {
                    "model": model,
                    "created_at": now(),
                    "done": False,
                    "message": {"role": "assistant", "content": piece},
                },
            )
        yield (
            "",
            {
                "model": model,
                "created_at": now(),
                "done": True,
                "done_reason": "stop",
                "message": {"role": "assistant", "content": ""},
            },
        )


def _chat(
    model: str,
    parts: Iterable[str],
    text: str,
    ident: str,
    created: int,
    usage: dict[str, int] | None,
) -> Iterator[tuple[str, Any]]:
    def event(delta: dict[str, Any], finish: str | None) -> tuple[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return "", {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_extproc_demo",
            "choices": [choice],
        }

    if "tools" in model:
        call = {
            "index": 0,
            "id": f"call_{ident[-12:]}",
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": ""},
        }
        yield event({"role": "assistant", "content": None, "tool_calls": [call]}, None)
        for piece in parts:  # the pieces of tool_arguments(text)
            yield event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None)
        yield event({}, "tool_calls")
    else:
        yield event({"role": "assistant", "content": ""}, None)
        for piece in parts:
            yield event({"content": piece}, None)
        yield event({}, "stop")
    if usage is not None:
        name, final = event({}, None)
        yield name, {**final, "choices": [], "usage": usage}
    yield "", "[DONE]"


def _responses(
    model: str, parts: Iterable[str], text: str, ident: str
) -> Iterator[tuple[str, Any]]:
    item = f"msg_{ident[5:]}"
    ids = {"item_id": item, "output_index": 0, "content_index": 0}
    yield (
        "response.created",
        {
            "type": "response.created",
            "response": {"id": ident, "status": "in_progress", "model": model},
        },
    )
    for number, piece in enumerate(parts):
        yield (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                **ids,
                "delta": piece,
                "sequence_number": number + 1,
            },
        )
    yield "response.output_text.done", {"type": "response.output_text.done", **ids, "text": text}
    yield (
        "response.completed",
        {"type": "response.completed", "response": responses_object(model, text, ident)},
    )


def _anthropic(
    model: str, parts: Iterable[str], text: str, ident: str
) -> Iterator[tuple[str, Any]]:
    message: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
    }
    yield "message_start", {"type": "message_start", "message": message}
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    for piece in parts:
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": len(text.split())},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def responses_object(model: str, text: str, ident: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    output = [
        {
            "type": "message",
            "id": f"msg_{ident[5:]}",
            "status": "completed",
            "role": "assistant",
            "content": content,
        }
    ]
    return {
        "id": ident,
        "object": "response",
        "status": "completed",
        "model": model,
        "output": output,
    }
