"""Where each streaming API puts the text it streams, and how it says a text is complete.

A reading of one JSON event names its deltas (the dict and field holding a piece of a longer
text, and the key of that text) and the streams it ends. The key tells texts apart: each chat
choice, each tool call of a choice, each Responses API item part, each Anthropic content
block. Dialects:

- OpenAI chat: ``choices[i].delta`` ``content`` (a string, or a list of parts whose ``text``
  the SDK joins), ``refusal``, ``reasoning_content`` / ``reasoning``,
  ``tool_calls[j].function.arguments``, the legacy ``function_call.arguments`` and
  ``audio.transcript``; ``finish_reason`` ends the choice;
- legacy completions: ``choices[i].text``;
- OpenAI Responses: every ``response.*.delta`` event's ``delta`` (output text, function call
  arguments, reasoning, refusal, transcripts...), per output, content and summary index: what
  SDKs join by (``output[i].content[j]``), whatever ``item_id`` says;
  its ``.done`` event ends that text (and repeats it whole: it is masked whole, like every other
  string), as do ``output_item.done``, ``content_part.done`` and the terminal events;
- Anthropic messages: the ``text`` or ``thinking`` a ``content_block_start`` seeds its block
  with (the SDK starts the block's text from it), then ``content_block_delta`` ``text_delta.text``,
  ``input_json_delta.partial_json``, ``thinking_delta.thinking``; ``content_block_stop`` ends
  the block, ``message_delta``/``message_stop`` end all;
- Gemini: ``candidates[i].content.parts[].text``; ``finishReason`` ends the candidate;
- Ollama (NDJSON): ``message.content`` / ``message.thinking``, ``response`` / ``thinking``;
  ``done: true`` ends all;
- Hugging Face TGI (``/generate_stream``): ``token.text``; the event with ``generated_text``
  (the whole text, masked whole) ends it;
- llama.cpp (``/completion``): ``content``; ``stop: true`` ends it.

Every index is read as clients read it: ``"0"`` and ``0`` are one key (a JavaScript SDK indexes
its arrays with either; Python ones coerce), so a text cannot be split by how its index is
written.

Text held at the end of a stream is sent in one more event of the same dialect
(``flush_event``), built from the last event that carried that text.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Hashable, ...]
_CHAT_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")
_CHAT_OBJECTS = (("function_call", "arguments"), ("audio", "transcript"))  # legacy, audio
_ANTHROPIC_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json",
                     "thinking_delta": "thinking"}  # fmt: skip
# What SDKs join a text by (``output[i].content[j]``, ``summary[k]``): not ``item_id``.
_RESPONSES_IDS = ("output_index", "content_index", "summary_index")
_RESPONSES_END = ("response.completed", "response.incomplete", "response.failed", "error")


@dataclass(slots=True)
class Delta:
    key: Key
    holder: dict[str, Any]
    field: str
    location: str


@dataclass(slots=True)
class Reading:
    deltas: list[Delta] = field(default_factory=list)
    ends: Callable[[Key], bool] | None = None


def _never(key: Key) -> bool:
    return False


def _every(key: Key) -> bool:
    return True


def read_event(event: dict[str, Any]) -> Reading:
    reading = Reading()
    choices = event.get("choices")
    if isinstance(choices, list):
        _chat(choices, reading)
    kind = event.get("type")
    if isinstance(kind, str):
        if kind.startswith("response.") or kind == "error":
            _responses(event, kind, reading)
        else:
            _anthropic(event, kind, reading)
    candidates = event.get("candidates")
    if isinstance(candidates, list):
        _gemini(candidates, reading)
    if "done" in event and ("message" in event or "response" in event or "model" in event):
        _ollama(event, reading)
    token = event.get("token")
    if isinstance(token, dict) and isinstance(token.get("text"), str):
        _tgi(event, token, reading)
    elif "stop" in event and isinstance(event.get("content"), str) and choices is None:
        _llama_cpp(event, reading)
    return reading


def index_key(value: Any) -> Hashable:
    """An index as clients use it: a number written as a string (``"0"``, ``" 1"``) or as an
    integral float is that integer; an integer, ``None`` or another string is itself; any other
    value is its ``repr`` (one key however often it comes, hashable)."""
    if type(value) is int or value is None or isinstance(value, int):  # bool: True is 1
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return repr(value)


def _ends(reading: Reading, test: Callable[[Key], bool]) -> None:
    before = reading.ends or _never
    reading.ends = lambda key: before(key) or test(key)


def _texts_of(dialects: tuple[str, ...], index: Any) -> Callable[[Key], bool]:
    """Every text of one choice (or candidate) of these dialects."""

    def test(key: Key) -> bool:
        return key[0] in dialects and key[1] == index

    return test


def _chat(choices: list[Any], reading: Reading) -> None:
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = index_key(choice.get("index", position))
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in _CHAT_FIELDS:
                value = delta.get(name)
                where = f"choices[{index}].{name}"
                if isinstance(value, str):
                    reading.deltas.append(Delta(("chat", index, name), delta, name, where))
                elif isinstance(value, list):  # parts: the SDK joins their text
                    for part in value:
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            reading.deltas.append(Delta(("chat", index, name), part, "text", where))
            calls = delta.get("tool_calls")
            for call_position, call in enumerate(calls if isinstance(calls, list) else ()):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    number = index_key(call.get("index", call_position))
                    where = f"choices[{index}].tool_calls[{number}].arguments"
                    key = ("chat", index, "tool", number)
                    reading.deltas.append(Delta(key, function, "arguments", where))
            for name, inner in _CHAT_OBJECTS:
                holder = delta.get(name)
                if isinstance(holder, dict) and isinstance(holder.get(inner), str):
                    where = f"choices[{index}].{name}.{inner}"
                    reading.deltas.append(Delta(("chat", index, name), holder, inner, where))
        elif isinstance(choice.get("text"), str):
            where = f"choices[{index}].text"
            reading.deltas.append(Delta(("text", index), choice, "text", where))
        if choice.get("finish_reason"):
            _ends(reading, _texts_of(("chat", "text"), index))


def _responses(event: dict[str, Any], kind: str, reading: Reading) -> None:
    ids = tuple(index_key(event.get(name)) for name in _RESPONSES_IDS)
    if kind.endswith(".delta") and isinstance(event.get("delta"), str):
        family = kind.removesuffix(".delta")
        reading.deltas.append(Delta(("responses", family, *ids), event, "delta", family))
    elif kind.endswith(".done") and kind not in ("response.output_item.done",
                                                 "response.content_part.done"):  # fmt: skip
        done = ("responses", kind.removesuffix(".done"), *ids)
        _ends(reading, lambda key: key == done)
    if kind == "response.output_item.done" and "output_index" in event:
        output = ids[0]
        _ends(reading, lambda key: key[0] == "responses" and key[2] == output)
    elif kind == "response.content_part.done" and "output_index" in event:
        output, content = ids[0], ids[1]
        _ends(reading, lambda key: key[0] == "responses" and key[2:4] == (output, content))
    elif kind in _RESPONSES_END:
        _ends(reading, _every)


def _anthropic(event: dict[str, Any], kind: str, reading: Reading) -> None:
    index = index_key(event.get("index"))
    delta = event.get("delta")
    block = event.get("content_block")
    if kind == "content_block_start" and isinstance(block, dict):
        # The SDK starts the block's text from here: the deltas continue it.
        for seeded in ("text", "thinking"):
            if isinstance(block.get(seeded), str):
                where = f"content[{index}].{seeded}"
                reading.deltas.append(Delta(("anthropic", index, seeded), block, seeded, where))
    elif kind == "content_block_delta" and isinstance(delta, dict):
        name = _ANTHROPIC_FIELDS.get(str(delta.get("type")))
        if name is not None and isinstance(delta.get(name), str):
            where = f"content[{index}].{name}"
            reading.deltas.append(Delta(("anthropic", index, name), delta, name, where))
    elif kind == "content_block_stop":
        _ends(reading, lambda key: key[0] == "anthropic" and key[1] == index)
    elif kind in ("message_delta", "message_stop", "error"):
        _ends(reading, _every)


def _gemini(candidates: list[Any], reading: Reading) -> None:
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            continue
        index = index_key(candidate.get("index", position))
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                where = f"candidates[{index}].text"
                reading.deltas.append(Delta(("gemini", index), part, "text", where))
        if candidate.get("finishReason"):
            _ends(reading, _texts_of(("gemini",), index))


def _ollama(event: dict[str, Any], reading: Reading) -> None:
    message = event.get("message")
    for holder, prefix in ((message, "message."), (event, "")):
        if not isinstance(holder, dict):
            continue
        for name in ("content", "thinking") if prefix else ("response", "thinking"):
            if isinstance(holder.get(name), str):
                key = ("ollama", prefix + name)
                reading.deltas.append(Delta(key, holder, name, prefix + name))
    if event.get("done") is True:
        _ends(reading, _every)


def _tgi(event: dict[str, Any], token: dict[str, Any], reading: Reading) -> None:
    reading.deltas.append(Delta(("tgi",), token, "text", "token.text"))
    if isinstance(event.get("generated_text"), str):  # the last event, with the whole text
        _ends(reading, _every)


def _llama_cpp(event: dict[str, Any], reading: Reading) -> None:
    reading.deltas.append(Delta(("llama.cpp",), event, "content", "content"))
    if event.get("stop") is True:
        _ends(reading, _every)


# -- the event that carries held text -----------------------------------------------------------
_CHAT_INNER = dict(_CHAT_OBJECTS)
_CHAT_META = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


def flush_event(key: Key, text: str, last: dict[str, Any]) -> dict[str, Any]:
    """An event of ``key``'s dialect carrying ``text``, like ``last`` (the last event that
    carried that text, already masked) but with no other content."""
    dialect = key[0]
    if dialect in ("chat", "text"):
        event = {name: last[name] for name in _CHAT_META if name in last}
        choice: dict[str, Any] = {"index": key[1]}
        if dialect == "text":
            choice.update(text=text, logprobs=None)
        elif key[2] == "tool":
            choice["delta"] = {"tool_calls": [{"index": key[3], "function": {"arguments": text}}]}
        elif key[2] in _CHAT_INNER:
            choice["delta"] = {key[2]: {_CHAT_INNER[key[2]]: text}}
        else:
            choice["delta"] = {key[2]: text}
        choice["finish_reason"] = None
        return {**event, "choices": [choice]}
    if dialect == "responses":
        event = {name: value for name, value in last.items() if name != "obfuscation"}
        event["delta"] = text
        if "logprobs" in event:
            event["logprobs"] = []
        return event
    if dialect == "anthropic":
        kind = next(kind for kind, name in _ANTHROPIC_FIELDS.items() if name == key[2])
        return {"type": "content_block_delta", "index": key[1],
                "delta": {"type": kind, key[2]: text}}  # fmt: skip
    if dialect == "gemini":
        event = {name: last[name] for name in ("modelVersion", "responseId") if name in last}
        content = {"role": "model", "parts": [{"text": text}]}
        return {"candidates": [{"content": content, "index": key[1]}], **event}
    if dialect == "tgi":
        return {"index": last.get("index", 0), "token": {"id": 0, "text": text, "special": False},
                "generated_text": None, "details": None}  # fmt: skip
    if dialect == "llama.cpp":
        return {"content": text, "stop": False}
    event = {name: last[name] for name in ("model", "created_at") if name in last}
    name = str(key[1])
    if name.startswith("message."):
        message = {"role": "assistant", "content": ""}
        message[name.removeprefix("message.")] = text
        return {**event, "message": message, "done": False}
    return {**event, "response": "", name: text, "done": False}
