"""restore: true: tokens an exchange's request was given come back as the caller's values in
its response (JSON, every stream dialect, split anywhere), and nowhere else."""

from __future__ import annotations

import json

import pytest

from extproc.decision import Decision
from extproc.exchange.machine import Exchange
from extproc.masking.engine import Masker
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.restore import ExchangeTokens, partial_token_start
from extproc.masking.stream import stream_masker

KEY = b"k" * 32
EMAIL = "jane.doe@example.com"
PROFILE = Profile("p", actions={"request": {"EMAIL": "tokenize"}}, restore=True)
BASE = Masker(PROFILE, KEY)
DECISION = Decision("d1", "r1", "allow", "eu-team", "ml-eu may reach eu models")


def issued(text: str = f"write to {EMAIL}") -> tuple[Masker, str]:
    """A masker bound to a fresh exchange, and the token its request gave ``EMAIL``."""
    masker = ExchangeTokens().bind(BASE)
    masked = masker.mask_text(text, "request")
    token = masked.split()[-1]
    assert token.startswith("<EMAIL:")
    return masker, token


def test_a_token_of_the_exchange_comes_back_as_the_callers_value() -> None:
    masker, token = issued()
    findings: list[object] = []
    out = masker.mask_text(f"I wrote to {token}.", "response", findings=findings)  # type: ignore[arg-type]
    assert out == f"I wrote to {EMAIL}."
    assert [(f.type, f.action) for f in findings] == [("RESTORED", "restore")]  # type: ignore[attr-defined]
    assert EMAIL not in repr(findings)


def test_a_profile_without_restore_gives_the_token_back_as_it_is() -> None:
    plain = Profile("p", actions={"request": {"EMAIL": "tokenize"}})
    base = Masker(plain, KEY)
    masker = ExchangeTokens().bind(base)
    assert masker is base
    token = masker.mask_text(EMAIL, "request")
    assert masker.mask_text(token, "response") == token


def test_another_exchange_cannot_restore_the_token() -> None:
    _, token = issued()
    other = ExchangeTokens().bind(BASE)
    assert other.mask_text(f"it is {token}", "response") == f"it is {token}"
    assert BASE.mask_text(f"it is {token}", "response") == f"it is {token}"


def test_a_token_is_never_restored_in_a_request() -> None:
    masker, token = issued()
    # A caller (or a later field of the same body) writing the token gets no value out of it.
    assert masker.mask_text(f"again {token}", "request") == f"again {token}"


def test_restored_values_are_not_masked_again_but_new_values_are() -> None:
    masker, token = issued()
    out = masker.mask_text(f"{token} and card 4111 1111 1111 1111", "response")
    assert out == f"{EMAIL} and card [REDACTED:CARD]"
    other = masker.mask_text("mail bob@example.org", "response")
    assert other == "mail [REDACTED:EMAIL]"  # the response action of a value the model adds


def test_the_original_spelling_comes_back() -> None:
    masker = ExchangeTokens().bind(BASE)
    document = json.loads('{"q": "mail jane\\uff0edoe@example.com"}')  # a full-width dot
    masked = masker.mask_json_value(document, "request", [])
    token = masked["q"].split()[-1]
    assert masker.mask_text(token, "response") == "jane\uff0edoe@example.com"


def test_json_responses_restore_in_strings_and_keys() -> None:
    masker, token = issued()
    body = json.dumps({"choices": [{"message": {"content": f"to {token}"}}], token: 1}).encode()
    result = masker.mask_body(body, "application/json", "response")
    assert json.loads(result.body) == {"choices": [{"message": {"content": f"to {EMAIL}"}}],
                                       EMAIL: 1}  # fmt: skip
    assert [f.type for f in result.findings] == ["RESTORED", "RESTORED"]


def chat_event(piece: str) -> bytes:
    event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def chat_text(raw: bytes) -> str:
    text = ""
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in json.loads(event[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def test_a_token_split_across_sse_events_at_every_position_is_restored() -> None:
    masker, token = issued()
    reply = f"Sure, {token} it is; and 4111 1111 1111 1111."
    for cut in range(1, len(reply)):
        stream = stream_masker("text/event-stream", masker, "response")
        raw = stream.feed(chat_event(reply[:cut])) + stream.feed(chat_event(reply[cut:]))
        raw += stream.feed(b"data: [DONE]\n\n") + stream.finish()
        assert chat_text(raw) == f"Sure, {EMAIL} it is; and [REDACTED:CARD].", cut


def test_a_partial_token_is_held_only_while_it_can_still_be_one() -> None:
    assert partial_token_start("see <EMAIL:0a1b") == 4
    assert partial_token_start("see <") == 4
    assert partial_token_start("see <EMAIL:0a1bz") == len("see <EMAIL:0a1bz")
    assert partial_token_start("a < b") == len("a < b")
    masker, token = issued()
    stream = stream_masker("text/event-stream", masker, "response")
    out = stream.feed(chat_event("x <EMAIL:zz, "))
    assert chat_text(out) == "x <EMAIL:zz, "  # cannot be a token: not held
    out = stream.feed(chat_event(f"y {token[:9]}"))
    assert chat_text(out) == "y "  # may still be one: held


@pytest.mark.parametrize(
    ("content_type", "event"),
    [
        ("application/x-ndjson", lambda p: json.dumps({"message": {"content": p}, "done": False})),
        (
            "text/event-stream",
            lambda p: (
                "data: "
                + json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": p},
                    }
                )
                + "\n"
            ),
        ),
        ("text/event-stream", lambda p: "data: " + p + "\n"),
    ],
)
def test_other_dialects_restore_split_tokens(content_type: str, event: object) -> None:
    masker, token = issued()
    half = len(token) // 2
    stream = stream_masker(content_type, masker, "response")
    raw = b"".join(
        stream.feed((event(piece) + "\n").encode())  # type: ignore[operator]
        for piece in (f"hi {token[:half]}", token[half:], " bye")
    )
    raw += stream.finish()
    assert EMAIL.encode() in raw or json.dumps(EMAIL).encode()[1:-1] in raw
    assert b"<EMAIL:" not in raw


def test_the_exchange_restores_and_keeps_restored_values_out_of_captures() -> None:
    config = MaskingConfig({"p": PROFILE}, "p", KEY)
    ex = Exchange(config, {"p": BASE}, capture_bytes=4096)
    ex.add_decision(DECISION)
    ex.request_headers({":method": "POST", ":path": "/v1/chat", "content-type": "application/json"})
    step = ex.request_body(json.dumps({"q": f"mail {EMAIL}"}).encode())
    assert step.body is not None
    sent = json.loads(step.body)["q"]
    assert EMAIL not in sent
    ex.response_headers({":status": "200", "content-type": "application/json"})
    reply = ex.response_body(json.dumps({"a": f"you said {sent}"}).encode())
    assert reply.body is not None
    assert json.loads(reply.body) == {"a": f"you said mail {EMAIL}"}
    event = ex.audit_event()
    assert event is not None
    assert event["findings"] == {"request.EMAIL": 1, "response.RESTORED": 1}
    assert EMAIL not in json.dumps(event)
    # A second exchange of the same profile gets the same token back untouched.
    second = Exchange(config, {"p": BASE})
    second.add_decision(DECISION)
    second.request_headers({":method": "POST", ":path": "/v1/chat"})
    second.response_headers({":status": "200", "content-type": "application/json"})
    echoed = second.response_body(json.dumps({"a": sent}).encode())
    assert echoed.body is None  # unchanged
