"""Answers shaped to show a value to the client's SDK, through the real Envoy: logprobs spelling
the answer again (whole and streamed), Responses deltas of one text under two ``item_id`` s,
indices written as strings, an Anthropic block seeded by its start event. The upstream serves
the answer a test chooses (``x-test-reply``); what the client gets is read as its SDK reads it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.demo.http import start_server
from extproc.demo.upstream import RecordedRequest, _handler
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import MODEL_KEY, Gateway, GatewayModel
from tests.support.sdk import leaked, logprob_texts, sse

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
REPLY_HEADER = "x-test-reply"
ANSWER = "card 4111 1111 1111 1111 mail jane.doe@example.com"
TOKENS = ["card", " 411", "1 111", "1 111", "1 111", "1", " mail", " jane", ".doe", "@",
          "example", ".com"]  # fmt: skip


def _logprobs(tokens: list[str]) -> dict[str, Any]:
    return {"content": [{"token": token, "logprob": -0.1, "bytes": list(token.encode()),
                         "top_logprobs": [{"token": token, "logprob": -0.1}]}
                        for token in tokens]}  # fmt: skip


def _chunk(index: Any, delta: dict[str, Any], logprobs: Any = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                         "finish_reason": None}]}  # fmt: skip


def _text_delta(text: str, item: str, content: Any = 0, **more: Any) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": item, "output_index": 0,
            "content_index": content, "delta": text, **more}  # fmt: skip


DONE = b"data: [DONE]\n\n"
COMPLETED = {"type": "response.completed", "response": {}}
JSON = "application/json"
EVENTS = "text/event-stream"
REPLIES: dict[str, tuple[str, bytes]] = {
    "chat-logprobs": (JSON, json.dumps({"id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                     "logprobs": _logprobs(TOKENS), "finish_reason": "stop"}]}).encode()),
    "chat-logprobs-stream": (EVENTS, sse(*(_chunk(0, {"content": token}, _logprobs([token]))
                                           for token in TOKENS)) + DONE),
    "responses-logprobs-stream": (EVENTS, sse(*(_text_delta(token, "m", logprobs=[
        {"token": token, "logprob": -0.1, "top_logprobs": []}]) for token in TOKENS),
        COMPLETED)),
    "responses-item-ids": (EVENTS, sse(_text_delta("card 4111 1111 ", "msg_a"),
                                       _text_delta("1111 1111", "msg_b"), COMPLETED)),
    "responses-content-index": (EVENTS, sse(_text_delta("card 4111 1111 ", "m", 0),
                                            _text_delta("1111 1111", "m", "0"), COMPLETED)),
    "chat-index": (EVENTS, sse(_chunk(0, {"content": "card 4111 1111 "}),
                               _chunk("0", {"content": "1111 1111"})) + DONE),
    "tool-index": (EVENTS, sse(
        _chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"c":"4111 1111 '}}]}),
        _chunk(0, {"tool_calls": [{"index": "0", "function": {"arguments": '1111 1111"}'}}]}))
        + DONE),
    "anthropic-index": (EVENTS, sse(
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "card 4111 1111 "}},
        {"type": "content_block_delta", "index": "0",
         "delta": {"type": "text_delta", "text": "1111 1111"}}, {"type": "message_stop"})),
    "anthropic-block-start": (EVENTS, sse(
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": "card 4111 1111"}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": " 1111 1111"}},
        {"type": "content_block_stop", "index": 0}, {"type": "message_stop"})),
}  # fmt: skip


class ChosenModel(GatewayModel):
    """The gateway's model, answering a request that names a reply (``x-test-reply``) with it."""

    def start(self) -> None:
        model = self

        class Handler(_handler(self)):  # type: ignore[misc]
            def do_POST(self) -> None:
                name = self.headers.get(REPLY_HEADER)
                if name is None:
                    super().do_POST()
                    return
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                model.record(RecordedRequest("POST", self.path, self._headers(), body))
                content_type, data = REPLIES[name]
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for start in range(0, len(data), 97):  # events cut anywhere
                    self._write_chunk(data[start : start + 97])
                self._write_chunk(b"")

        self._server = start_server(self.host, self.port, Handler)
        self.port = int(self._server.server_address[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    gateway = Gateway(root, config_text=e2e_config(geoip_database(root)))
    gateway.model = ChosenModel(port=0, required_key=MODEL_KEY)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def answer(gateway: Gateway, reply: str) -> bytes:
    headers = {"authorization": f"Bearer {gateway.token()}", "x-forwarded-for": SWEDEN,
               "content-type": "application/json", REPLY_HEADER: reply}  # fmt: skip
    body = json.dumps({"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}]})
    connection = http.client.HTTPConnection("127.0.0.1", gateway.listener_port, timeout=30)
    try:
        connection.request("POST", "/eu/v1/chat/completions", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        connection.close()


def events_of(raw: bytes) -> list[Any]:
    found = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line[:5] == b"data:"]
        if data and data != [b"[DONE]"]:
            found.append(json.loads(b"\n".join(data)))
    return found


def test_a_whole_answers_logprobs_do_not_spell_it(gateway: Gateway) -> None:
    document = json.loads(answer(gateway, "chat-logprobs"))
    choice = document["choices"][0]
    assert choice["message"]["content"].startswith("card [REDACTED:CARD] mail ")
    assert choice["logprobs"] is None
    assert leaked([document]) == []


@pytest.mark.parametrize("reply", ["chat-logprobs-stream", "responses-logprobs-stream"])
def test_streamed_logprobs_do_not_spell_the_answer(gateway: Gateway, reply: str) -> None:
    events = events_of(answer(gateway, reply))
    assert leaked(events) == []
    for event in events:
        for holder in [event, *(event.get("choices") or [])]:
            assert [text for text in logprob_texts(holder.get("logprobs")) if text] == []


@pytest.mark.parametrize(
    "reply",
    ["responses-item-ids", "responses-content-index", "chat-index", "tool-index",
     "anthropic-index", "anthropic-block-start"],
)  # fmt: skip
def test_a_text_the_sdk_joins_is_masked_as_one(gateway: Gateway, reply: str) -> None:
    events = events_of(answer(gateway, reply))
    assert leaked(events) == []
    assert "[REDACTED:CARD]" in json.dumps(events)
