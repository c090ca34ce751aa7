"""Streams shaped to slip a value past the masker, through the real Envoy: data lines without
event delimiters, an event larger than the buffering cap, an event stream under another label.
What the client gets is reassembled as its SDK does (deltas per dialect; SSE data lines joined
with a newline, as the spec says, and with nothing, as line-by-line readers do)."""

from __future__ import annotations

import http.client
import json
import re
import unicodedata

import pytest

from tests.e2e.harness import Gateway
from tests.support.dialects import LEAKY_CASES, frames_of, text_of

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"


def exposed(text: str) -> bool:
    """The card, the SSN or the e-mail, whatever separates their characters."""
    flat = re.sub(r"[\s\-+.,/_]", "", unicodedata.normalize("NFKC", text))
    return "4111111111111111" in flat or "123456789" in flat or "janedoe@examplecom" in flat


def send(
    gateway: Gateway, path: str, body: object, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    sent = {"authorization": f"Bearer {gateway.token()}", "x-forwarded-for": SWEDEN,
            "content-type": "application/json", **headers}  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", "/eu" + path, body=json.dumps(body).encode(), headers=sent)
        response = connection.getresponse()
        got = {name.lower(): value for name, value in response.getheaders()}
        return response.status, got, response.read()
    finally:
        connection.close()


def data_lines(raw: bytes) -> list[str]:
    lines = raw.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]


def test_data_lines_without_delimiters_hide_the_values_joined_either_way(
    gateway: Gateway,
) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == "plain")
    headers = {"x-demo-no-delimiters": "1", "x-demo-chunk-chars": "2"}
    status, _, raw = send(gateway, case.path, {"model": case.model, "stream": True,
                                               **case.fields}, headers)  # fmt: skip
    assert status == 200
    lines = data_lines(raw)
    assert len(lines) > 20  # still one small piece per line
    assert not exposed("".join(lines))
    assert not exposed("\n".join(lines))
    assert "[REDACTED:CARD]" in "".join(lines)


ECHO = [("/v1/chat/completions", "demo-echo", "chat"),
        ("/v1/chat/completions", "demo-tools", "tools"),
        ("/v1/chat/completions", "demo-plain", "plain"),
        ("/v1/responses", "demo-echo", "responses"),
        ("/v1/messages", "demo-echo", "anthropic")]  # fmt: skip
BIG = 70_000


@pytest.mark.parametrize(("path", "model", "kind"), ECHO, ids=[kind for *_, kind in ECHO])
def test_a_card_across_an_event_larger_than_the_cap_arrives_masked(
    gateway: Gateway, path: str, model: str, kind: str
) -> None:
    shift = len('{"query": "') if kind == "tools" else 0  # the tool call's JSON around it
    text = "A" * (BIG - 10 - shift) + " card 4111 1111 1111 1111 end"
    parts = [text[: BIG - shift], text[BIG - shift :]]
    if path == "/v1/responses":
        content = [{"type": "input_text", "text": part} for part in parts]
        body: dict[str, object] = {"model": model, "stream": True,
                                   "input": [{"role": "user", "content": content}]}  # fmt: skip
    else:
        content = [{"type": "text", "text": part} for part in parts]
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": content}]}
        if path == "/v1/messages":
            body["max_tokens"] = 9
    status, _, raw = send(gateway, path, body, {"x-demo-chunk-chars": str(BIG)})
    assert status == 200
    got = text_of(kind, frames_of(raw, False))
    assert not exposed(got[-300:]), got[-300:]
    assert got.endswith(" card [REDACTED:CARD] end")


# "none": no content type; the last is what Envoy makes of two content-type headers.
LABELS = ["application/json", "text/plain", "application/octet-stream", "none",
          "text/event-stream, text/plain"]  # fmt: skip


@pytest.mark.parametrize("label", LABELS)
def test_an_event_stream_under_another_label_arrives_masked(gateway: Gateway, label: str) -> None:
    case = next(case for case in LEAKY_CASES if case.kind == "chat")
    headers = {"x-demo-content-type": label, "x-demo-chunk-chars": "4"}
    status, got_headers, raw = send(gateway, case.path, {"model": case.model, "stream": True,
                                                         **case.fields}, headers)  # fmt: skip
    assert status == 200
    if label != "none":
        assert got_headers.get("content-type") == label
    text = text_of("chat", frames_of(raw, False))
    assert not exposed(text), text
    assert text.startswith("Customer record: card [REDACTED:CARD], e-mail <EMAIL:")
