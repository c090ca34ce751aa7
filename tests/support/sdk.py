"""Reading an answer the way each API's SDK decodes it: deltas joined per
``output[i].content[j]``, ``choices[int(index)]``, ``content[int(index)]`` (a block seeded by its
start event), tool-call arguments and partial JSON parsed, logprob tokens, bytes and top
alternatives joined. ``leaked`` lists every such reading that shows a value."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any


def exposed(text: str) -> bool:
    flat = re.sub(r"[\s\-+.,/_]", "", unicodedata.normalize("NFKC", text))
    return "4111111111111111" in flat or "jane.doe@example.com" in text


# -- what the client decodes ----------------------------------------------------------------------
def sse(*events: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, (str, float)) else value  # pydantic and JS coerce


def logprob_texts(logprobs: Any) -> Iterator[str]:
    """What logprobs spell: tokens joined, bytes joined, top alternatives joined."""
    if isinstance(logprobs, dict) and isinstance(logprobs.get("tokens"), list):  # completions
        yield "".join(logprobs["tokens"])
        tops = logprobs.get("top_logprobs") or []
        yield "".join(key for top in tops if isinstance(top, dict) for key in top)
        return
    entries = logprobs.get("content") if isinstance(logprobs, dict) else logprobs
    if not isinstance(entries, list):
        return
    yield "".join(entry.get("token", "") for entry in entries)
    yield bytes(b for entry in entries for b in entry.get("bytes") or []).decode("utf-8", "replace")
    tops = [top for entry in entries for top in entry.get("top_logprobs") or []]
    yield "".join(top.get("token", "") for top in tops)


def sdk_texts(events: list[Any]) -> dict[Any, str]:
    """Each text as the dialect's SDK accumulates it."""
    texts: dict[Any, str] = {}

    def add(key: Any, value: Any) -> None:
        if isinstance(value, str):
            texts[key] = texts.get(key, "") + value

    for event in events:
        for position, choice in enumerate(event.get("choices") or []):
            index = _int(choice.get("index", position))
            add(("text", index), choice.get("text"))
            for number, text in enumerate(logprob_texts(choice.get("logprobs"))):
                add(("logprobs", index, number), text)
            delta = choice.get("delta") or choice.get("message") or {}
            for name in ("content", "refusal", "reasoning_content", "reasoning"):
                value = delta.get(name)
                for part in value if isinstance(value, list) else [{"text": value}]:
                    add(("chat", index, name), part.get("text"))
            for number, call in enumerate(delta.get("tool_calls") or []):
                function = call.get("function") or {}
                add(("tool", index, _int(call.get("index", number))), function.get("arguments"))
            add(("function_call", index), (delta.get("function_call") or {}).get("arguments"))
            add(("audio", index), (delta.get("audio") or {}).get("transcript"))
        kind = event.get("type")
        if isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta"):
            where = (_int(event.get("output_index")), _int(event.get("content_index")))
            add(("responses", kind, *where), event.get("delta"))
            for number, text in enumerate(logprob_texts(event.get("logprobs"))):
                add(("responses-logprobs", *where, number), text)
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            for name in ("text", "thinking"):
                add(("anthropic", _int(event.get("index")), name), block.get(name))
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            for name in ("text", "thinking", "partial_json"):
                add(("anthropic", _int(event.get("index")), name), delta.get(name))
    return texts


def strings(value: Any) -> Iterator[str]:
    """Every string of a value, and of the JSON a string holds (tool-call arguments)."""
    if isinstance(value, str):
        yield value
        try:
            inner = json.loads(value)
        except ValueError:
            return
        if not isinstance(inner, str):
            yield from strings(inner)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def leaked(events: list[Any]) -> list[str]:
    views = [*strings(events), *strings(list(sdk_texts(events).values()))]
    return [text for text in views if exposed(text)]
