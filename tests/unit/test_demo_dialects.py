"""The demo model in every dialect: what it streams reassembles to its reply, a leaky reply is
split across events, and the processor's stream maskers read each dialect it speaks."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.demo.upstream import LEAKY_REPLY, DemoModel
from extproc.masking.engine import Masker
from extproc.masking.profile import Profile
from extproc.masking.stream import stream_masker
from tests.support.dialects import LEAKY_CASES, MESSAGES, frames_of, text_of

CARD = "4111 1111 1111 1111"
CASES = [(case.path, case.model, case.fields, case.kind) for case in LEAKY_CASES]


@pytest.fixture(scope="module")
def model() -> Iterator[DemoModel]:
    server = DemoModel()
    server.start()
    yield server
    server.stop()


def post(
    model: DemoModel, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", model.port, timeout=10)
    try:
        connection.request("POST", path, body=json.dumps(body), headers=headers or {})
        response = connection.getresponse()
        return response.getheader("content-type") or "", response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("path", "name", "fields", "kind"), CASES)
def test_each_dialect_streams_the_leaky_reply_split_across_events(
    model: DemoModel, path: str, name: str, fields: dict[str, Any], kind: str
) -> None:
    content_type, raw = post(model, path, {"model": name, "stream": True, **fields})
    events = frames_of(raw, kind == "ollama")
    assert text_of(kind, events) == LEAKY_REPLY
    whole = ("response.output_text.done", "response.completed")  # these repeat the text whole
    deltas = [e for e in events if not (isinstance(e, dict) and e.get("type") in whole)]
    assert CARD not in json.dumps(deltas)  # never whole in one delta
    masker = Masker(Profile("p"), b"k" * 32)
    stream = stream_masker(content_type, masker, "response")
    masked = stream.feed(raw) + stream.finish()
    text = text_of(kind, frames_of(masked, kind == "ollama"))
    assert CARD not in text
    assert "[REDACTED:CARD]" in text


@pytest.mark.parametrize(("path", "name", "fields", "kind"), CASES)
def test_each_dialect_answers_whole_without_stream(
    model: DemoModel, path: str, name: str, fields: dict[str, Any], kind: str
) -> None:
    _, raw = post(model, path, {"model": name.replace("leaky", "echo"), "stream": False, **fields})
    reply = json.loads(raw)
    assert reply  # a document of the dialect
    assert "hi" in raw.decode() or "x" in raw.decode()


def test_cr_line_endings_no_delimiters_and_fill(model: DemoModel) -> None:
    body = {"model": "demo-leaky-plain", "stream": True, "messages": MESSAGES}
    _, raw = post(model, "/v1/chat/completions", body, {"x-demo-line-ending": "cr"})
    assert b"\n" not in raw
    assert text_of("plain", frames_of(raw, False)) == LEAKY_REPLY
    _, raw = post(model, "/v1/chat/completions", body, {"x-demo-no-delimiters": "1"})
    assert b"\n\n" not in raw[:-2]
    fill = {"x-demo-fill-bytes": "100000", "x-demo-chunk-chars": "1000"}
    _, raw = post(model, "/v1/chat/completions", body, fill)
    assert len(text_of("plain", frames_of(raw, False))) == 100000
