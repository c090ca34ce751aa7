"""Answers whose values once reached the client in a form its SDK decodes: logprobs spelling the
answer again, texts keyed differently from how SDKs join them (``item_id`` against
``output_index``, ``"0"`` against ``0``), a block's text seeded by its start event, chat fields
no dialect read, and JSON escapes the client's parser turns into separators.

Each test reads what the client gets as its SDK does: deltas joined per ``output[i]``,
``choices[int(index)]``, ``content[int(index)]``, tool-call arguments and partial JSON parsed,
logprob tokens and bytes joined."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.masking.dialects import index_key
from extproc.masking.engine import Masker
from extproc.masking.profile import Profile
from extproc.masking.stream import SseMasker
from tests.support.sdk import exposed, leaked, logprob_texts, sdk_texts, sse, strings

KEY = b"k" * 32
MASKER = Masker(Profile("p"), KEY)
ANSWER = "card 4111 1111 1111 1111 mail jane.doe@example.com"
TOKENS = ["card", " 411", "1 111", "1 111", "1 111", "1", " mail", " jane", ".doe", "@",
          "example", ".com"]  # fmt: skip
assert "".join(TOKENS) == ANSWER


# -- what the client decodes ----------------------------------------------------------------------
def streamed(raw: bytes) -> list[Any]:
    masker = SseMasker(MASKER, "response")
    out = masker.feed(raw) + masker.finish()
    found = []
    for block in out.split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if data and data != [b"[DONE]"]:
            found.append(json.loads(b"\n".join(data)))
    return found


# -- logprobs -------------------------------------------------------------------------------------
def _chat_logprobs(tokens: list[str]) -> dict[str, Any]:
    entries = [
        {"token": token, "logprob": -0.1, "bytes": list(token.encode()),
         "top_logprobs": [{"token": token, "logprob": -0.1, "bytes": list(token.encode())}]}
        for token in tokens
    ]  # fmt: skip
    return {"content": entries, "refusal": None}


def _completion_logprobs(tokens: list[str]) -> dict[str, Any]:
    return {"tokens": tokens, "token_logprobs": [-0.1] * len(tokens),
            "text_offset": list(range(len(tokens))),
            "top_logprobs": [{token: -0.1} for token in tokens]}  # fmt: skip


WHOLE_ANSWERS = {
    "chat": {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": ANSWER},
             "logprobs": _chat_logprobs(TOKENS)}]},
    "completions": {"object": "text_completion", "choices": [{"index": 0, "text": ANSWER,
                    "logprobs": _completion_logprobs(TOKENS), "finish_reason": "stop"}]},
    "responses": {"object": "response", "output": [{"type": "message", "id": "m", "content": [
                  {"type": "output_text", "text": ANSWER, "annotations": [],
                   "logprobs": [{"token": t, "logprob": -0.1, "bytes": list(t.encode()),
                                 "top_logprobs": []} for t in TOKENS]}]}]},
    "tokens only": {"object": "chat.completion", "choices": [{"index": 0,
                    "message": {"role": "assistant", "content": None},
                    "logprobs": _chat_logprobs(TOKENS)}]},
}  # fmt: skip


def _whole_views(document: Any) -> list[str]:
    views = list(strings(document))
    for choice in document.get("choices") or []:
        views.extend(logprob_texts(choice.get("logprobs")))
    for item in document.get("output") or []:
        for part in item.get("content") or []:
            views.extend(logprob_texts(part.get("logprobs")))
    return views


@pytest.mark.parametrize("name", WHOLE_ANSWERS)
def test_a_whole_answers_logprobs_are_emptied(name: str) -> None:
    body = json.dumps(WHOLE_ANSWERS[name]).encode()
    assert any(exposed(text) for text in _whole_views(json.loads(body)))  # the attack spells it
    result = MASKER.mask_body(body, "application/json", "response")
    document = json.loads(result.body)
    assert [text for text in _whole_views(document) if exposed(text)] == []
    assert "LOGPROBS" in {finding.type for finding in result.findings}


def test_a_request_asking_for_logprobs_keeps_asking() -> None:
    body = b'{"model":"m","logprobs":true,"top_logprobs":5,"messages":[]}'
    assert MASKER.mask_body(body, "application/json", "request").body == body


def test_an_answer_without_logprobs_is_unchanged() -> None:
    body = b'{"choices":[{"index":0,"message":{"content":"hello"},"logprobs":null}]}'
    result = MASKER.mask_body(body, "application/json", "response")
    assert result.body == body
    assert not result.findings


def _chat_chunk(token: str) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": token}, "logprobs": _chat_logprobs([token]),
              "finish_reason": None}  # fmt: skip
    return {"object": "chat.completion.chunk", "choices": [choice]}


def _completion_chunk(token: str) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": token,
            "logprobs": _completion_logprobs([token]), "finish_reason": None}]}  # fmt: skip


def _responses_delta(token: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
            "content_index": 0, "delta": token,
            "logprobs": [{"token": token, "logprob": -0.1, "top_logprobs": []}]}  # fmt: skip


@pytest.mark.parametrize("chunk", [_chat_chunk, _completion_chunk, _responses_delta])
def test_streamed_logprobs_are_emptied(chunk: Any) -> None:
    events = streamed(sse(*(chunk(token) for token in TOKENS)) + b"data: [DONE]\n\n")
    assert leaked(events) == []
    assert all(
        not choice.get("logprobs")
        for event in events
        for choice in [event, *(event.get("choices") or [])]
    )


# -- texts keyed as SDKs key them -----------------------------------------------------------------
FIRST, SECOND = "card 4111 1111 ", "1111 1111"  # both held until the stream ends


def _dialect(kind: str, first_index: Any, second_index: Any) -> list[dict[str, Any]]:
    """Two deltas of one text (as the SDK joins it), with the given indices."""
    if kind == "chat":
        return [{"choices": [{"index": i, "delta": {"content": text}, "finish_reason": None}]}
                for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip
    if kind == "completions":
        return [{"choices": [{"index": i, "text": text, "finish_reason": None}]}
                for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip
    if kind == "tool":
        pieces = ((first_index, '{"c":"' + FIRST), (second_index, SECOND + '"}'))
        return [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {
                 "arguments": text}}]}}]} for i, text in pieces]  # fmt: skip
    if kind == "responses-output":
        return [{"type": "response.output_text.delta", "item_id": "m", "output_index": i,
                 "content_index": 0, "delta": text}
                for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip
    if kind == "responses-content":
        return [{"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                 "content_index": i, "delta": text}
                for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip
    if kind == "anthropic":
        return [{"type": "content_block_delta", "index": i,
                 "delta": {"type": "text_delta", "text": text}}
                for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip
    assert kind == "gemini"
    return [{"candidates": [{"index": i, "content": {"parts": [{"text": text}]}}]}
            for i, text in ((first_index, FIRST), (second_index, SECOND))]  # fmt: skip


KEYED = ["chat", "completions", "tool", "responses-output", "responses-content", "anthropic",
         "gemini"]  # fmt: skip


@pytest.mark.parametrize("kind", KEYED)
@pytest.mark.parametrize(("first", "second"), [(0, "0"), ("0", 0), (1, "1"), (0, 0.0), (2, " 2")])
def test_an_index_written_as_a_string_is_the_same_text(kind: str, first: Any, second: Any) -> None:
    events = streamed(sse(*_dialect(kind, first, second)))
    assert leaked(events) == []


SPELLINGS = st.sampled_from([0, "0", 0.0, " 0"])


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KEYED),
    cut=st.integers(min_value=1, max_value=len(ANSWER) - 1),
    spellings=st.tuples(SPELLINGS, SPELLINGS),
    items=st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from(["a", "b", None])),
)
def test_a_text_cut_anywhere_and_keyed_any_way_reaches_the_sdk_masked(
    kind: str, cut: int, spellings: tuple[Any, Any], items: tuple[Any, Any]
) -> None:
    """Whatever the index spellings and item ids, the SDK joins the two pieces: so must we."""
    events = _dialect(kind, *spellings)
    pieces = (ANSWER[:cut], ANSWER[cut:])
    for event, piece, item in zip(events, pieces, items, strict=True):
        holder = _piece_holder(kind, event)
        holder[
            next(name for name in ("content", "text", "arguments", "delta") if name in holder)
        ] = piece
        if kind.startswith("responses"):
            if item is None:
                event.pop("item_id", None)
            else:
                event["item_id"] = item
    out = streamed(sse(*events) + b"data: [DONE]\n\n")
    assert leaked(out) == []


def _piece_holder(kind: str, event: dict[str, Any]) -> dict[str, Any]:
    if kind in ("chat", "completions"):
        choice = event["choices"][0]
        return choice["delta"] if kind == "chat" else choice
    if kind == "tool":
        return event["choices"][0]["delta"]["tool_calls"][0]["function"]
    if kind == "anthropic":
        return event["delta"]
    if kind == "gemini":
        return event["candidates"][0]["content"]["parts"][0]
    return event


@pytest.mark.parametrize(
    ("first", "second"), [("msg_a", "msg_b"), (None, "msg_b"), ("msg_a", None), ("a", "a")]
)
@pytest.mark.parametrize("family", ["output_text", "refusal", "function_call_arguments"])
def test_a_responses_text_is_keyed_by_its_output_and_content_index(
    first: Any, second: Any, family: str
) -> None:
    kind = f"response.{family}.delta"
    events = [{"type": kind, "output_index": 0, "content_index": 0, "delta": text}
              for text in (FIRST, SECOND)]  # fmt: skip
    for event, item in zip(events, (first, second), strict=True):
        if item is not None:
            event["item_id"] = item
    done = {"type": "response.completed", "response": {}}
    assert leaked(streamed(sse(*events, done))) == []


def test_responses_texts_without_any_index_are_one_text() -> None:
    events = [{"type": "response.output_text.delta", "delta": FIRST},
              {"type": "response.output_text.delta", "delta": SECOND, "item_id": "m"}]  # fmt: skip
    assert leaked(streamed(sse(*events, {"type": "response.completed"}))) == []


def test_a_content_part_done_ends_only_its_own_part() -> None:
    events = [
        {"type": "response.output_text.delta", "item_id": "a", "output_index": 0,
         "content_index": 0, "delta": FIRST},
        {"type": "response.content_part.done", "item_id": "a", "output_index": 0,
         "content_index": 1},
        {"type": "response.output_text.delta", "item_id": "b", "output_index": 0,
         "content_index": 0, "delta": SECOND},
    ]  # fmt: skip
    assert leaked(streamed(sse(*events))) == []


def test_index_keys() -> None:
    assert index_key("0") == index_key(0) == index_key(0.0) == 0
    assert index_key("x") == "x"
    assert index_key(None) is None
    assert index_key([1]) == "[1]"


# -- a block seeded by its start event ------------------------------------------------------------
@pytest.mark.parametrize(
    ("block", "delta"), [("text", "text_delta"), ("thinking", "thinking_delta")]
)
@pytest.mark.parametrize("index", [0, "0"])
def test_an_anthropic_block_started_with_text_continues_it(
    block: str, delta: str, index: Any
) -> None:
    events = [
        {"type": "message_start", "message": {"id": "m", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": block,
         block: "card 4111 1111"}},
        {"type": "content_block_delta", "index": index, "delta": {"type": delta,
         block: " 1111 1111"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]  # fmt: skip
    out = streamed(sse(*events))
    assert leaked(out) == []
    assert sdk_texts(out)[("anthropic", 0, block)].startswith("card ")


# -- chat fields the SDK accumulates --------------------------------------------------------------
CHAT_FIELDS = {
    "function_call": lambda text: {"function_call": {"arguments": text}},
    "audio": lambda text: {"audio": {"transcript": text}},
    "content parts": lambda text: {"content": [{"type": "text", "text": text}]},
    "refusal parts": lambda text: {"refusal": [{"type": "text", "text": text}]},
}


@pytest.mark.parametrize("field", CHAT_FIELDS)
@pytest.mark.parametrize("finish", [True, False])
def test_every_chat_field_the_sdk_joins_is_one_text(field: str, finish: bool) -> None:
    chunks = [{"choices": [{"index": 0, "delta": CHAT_FIELDS[field](text),
               "finish_reason": None}]} for text in ("card 4111 1111", " 1111 1111")]  # fmt: skip
    if finish:
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out = streamed(sse(*chunks) + b"data: [DONE]\n\n")
    assert leaked(out) == []
    assert any("[REDACTED:CARD]" in text for text in sdk_texts(out).values())


def test_two_parts_of_one_event_are_one_text() -> None:
    parts = [{"type": "text", "text": "card 4111 1111"}, {"type": "text", "text": " 1111 1111"}]
    chunk = {"choices": [{"index": 0, "delta": {"content": parts}, "finish_reason": "stop"}]}
    assert leaked(streamed(sse(chunk))) == []


# -- JSON escapes in JSON inside JSON -------------------------------------------------------------
TAB_ARGS = '{"card":"4111\\t1111\\t1111\\t1111"}'


@pytest.mark.parametrize(
    "arguments",
    [TAB_ARGS, '{"card":"4111\\f1111\\f1111\\f1111"}', '{"c":"jane.doe\\u0040example\\/com"}',
     '{"c":"4111\\\\u0020\\u0031111 1111 1111"}'],
)  # fmt: skip
def test_escapes_in_whole_tool_arguments_are_read_as_the_client_decodes(arguments: str) -> None:
    call = {"id": "x", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = json.dumps({"choices": [{"index": 0, "message": {"tool_calls": [call]}}]}).encode()
    masked = json.loads(MASKER.mask_body(body, "application/json", "response").body)
    assert [text for text in strings(masked) if exposed(text)] == []


def test_an_escaped_backslash_before_t_is_no_tab() -> None:
    text = "path C:\\\\t1111 1111 1111 1111"  # a backslash, then "t1111": no card
    assert MASKER.mask_text(text, "response") == text


@pytest.mark.parametrize(
    ("kind", "pieces"),
    [
        ("tool", ['{"c":"4111\\t1111', '\\t1111\\t1111"}']),
        ("tool", ['{"c":"4111\\', 't1111\\t1111\\t1111"}']),
        ("anthropic", ['{"c":"4111\\t1111', '\\t1111\\t1111"}']),
        ("responses", ['{"c":"4111\\t1111', '\\t1111\\t1111"}']),
    ],
)
def test_escapes_in_streamed_arguments_are_read_as_the_client_decodes(
    kind: str, pieces: list[str]
) -> None:
    if kind == "tool":
        chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
                   "arguments": piece}}]}}]} for piece in pieces]  # fmt: skip
    elif kind == "anthropic":
        chunks = [{"type": "content_block_delta", "index": 0,
                   "delta": {"type": "input_json_delta", "partial_json": piece}}
                  for piece in pieces]  # fmt: skip
    else:
        chunks = [{"type": "response.function_call_arguments.delta", "output_index": 0,
                   "delta": piece} for piece in pieces]  # fmt: skip
    out = streamed(sse(*chunks))
    assert leaked(out) == []


# -- blanks between digit groups ------------------------------------------------------------------
@pytest.mark.parametrize("blank", ["\x0b", "\x0c", "\x85"])
def test_a_vertical_tab_form_feed_or_nel_reads_as_a_space(blank: str) -> None:
    text = f"card 4111{blank}1111{blank}1111{blank}1111 ok"
    assert MASKER.mask_text(text, "response") == "card [REDACTED:CARD] ok"


def test_newlines_are_no_card_separators() -> None:
    text = "rows 4111\n1111\n1111\n1111 ok"
    assert MASKER.mask_text(text, "response") == text


@pytest.mark.parametrize("dialect", ["tgi", "llama.cpp"])
def test_text_generation_inference_and_llama_cpp_streams_are_read_as_one_text(dialect: str) -> None:
    """Hugging Face TGI's /generate_stream and llama.cpp's /completion stream their own shapes;
    clients join ``token.text`` or ``content``."""
    import json as json_

    from extproc.masking.engine import Masker
    from extproc.masking.profile import Profile
    from extproc.masking.stream import SseMasker

    pieces = ["card 4111 1111", " 1111 1111", " and more"]
    if dialect == "tgi":
        events = [{"token": {"id": n, "text": p, "special": False}, "generated_text": None}
                  for n, p in enumerate(pieces)]  # fmt: skip
        events[-1]["generated_text"] = "".join(pieces)
    else:
        events = [{"content": p, "stop": False} for p in pieces] + [{"content": "", "stop": True}]
    stream = SseMasker(Masker(Profile("p"), b"k" * 32), "response")
    out = b"".join(stream.feed(b"data: " + json_.dumps(e).encode() + b"\n\n") for e in events)
    out += stream.finish()
    lines = out.decode().splitlines()
    received = [json_.loads(line[6:]) for line in lines if line.startswith("data: {")]
    if dialect == "tgi":
        joined = "".join(e["token"]["text"] for e in received)
        assert "4111" not in received[-1]["generated_text"]
    else:
        joined = "".join(e["content"] for e in received)
    assert "4111 1111 1111 1111" not in joined
    assert "[REDACTED:CARD]" in joined
