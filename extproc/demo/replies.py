"""The demo model's whole (unstreamed) replies in each dialect, and what it reads of a request:
the last user message, the Responses API's input or the legacy prompt."""

from __future__ import annotations

import secrets
import time
from typing import Any

from extproc.demo.dialects import TOOL_NAME, now, responses_object, tool_arguments


def whole(dialect: str, model: str, text: str, messages: Any = None) -> dict[str, Any]:
    """The reply in one JSON document (``messages``: the chat request's, for its usage)."""
    if dialect == "chat":
        return _chat_completion(model, text, messages)
    ident = secrets.token_hex(12)
    if dialect == "responses":
        return responses_object(model, text, f"resp_{ident}")
    if dialect == "completions":
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        return {
            "id": f"cmpl-{ident}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
        }
    if dialect == "anthropic":
        return {
            "id": f"msg_{ident}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
        }
    if dialect == "ollama":
        return {
            "model": model,
            "created_at": now(),
            "done": True,
            "done_reason": "stop",
            "message": {"role": "assistant", "content": text},
        }
    raise ValueError(dialect)


def _chat_completion(name: str, text: str, messages: Any) -> dict[str, Any]:
    listed = messages if isinstance(messages, list) else []
    prompt = " ".join(str(m.get("content", "")) for m in listed if isinstance(m, dict))
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if "tools" in name:
        call = {
            "id": "call_demo",
            "type": "function",
            "function": {"name": TOOL_NAME, "arguments": tool_arguments(text)},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_extproc_demo",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(prompt, text),
    }


def usage(prompt: str, completion: str) -> dict[str, int]:
    prompt_tokens = max(1, len(prompt.split()))
    completion_tokens = max(1, len(completion.split()))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# -- what the caller asked -----------------------------------------------------------------------
def prompt_of(dialect: str, request: dict[str, Any]) -> str:
    """The text the demo echoes: the last user message, the input, or the prompt."""
    if dialect == "responses":
        return _input_text(request.get("input"))
    if dialect == "completions":
        prompt = request.get("prompt")
        return prompt if isinstance(prompt, str) else " ".join(map(str, prompt or ()))
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise TypeError("the body must be JSON with a 'messages' list")
    return last_user_text(messages)


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _input_text(message.get("content"))
    return ""


def _input_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("role") == "user":
                texts.append(_input_text(part.get("content")))
        return "".join(texts)
    return ""
