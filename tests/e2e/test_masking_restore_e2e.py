"""restore: true through the real Envoy: the model sees tokens, the caller reads its own values
back (JSON and SSE with tokens split across events), and no other exchange can open them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.audit.read import read_events
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway
from tests.support.dialects import frames_of, text_of

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("restore")
    config = e2e_config(geoip_database(root)).replace(
        "      actions: {default: redact, email: tokenize}\n",
        "      actions: {default: redact, email: tokenize}\n      restore: true\n",
    )
    assert "restore: true" in config
    gateway = Gateway(root, config_text=config)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "demo-echo", "messages": [{"role": "user", "content": content}], **extra}


def model_saw(gateway: Gateway) -> str:
    return str(json.loads(gateway.model.requests()[-1].body)["messages"][0]["content"])


def test_the_model_sees_a_token_and_the_caller_reads_its_own_value(gateway: Gateway) -> None:
    gateway.model.clear()
    reply = gateway.request(
        token=gateway.token(), source=SWEDEN, body=chat(f"mail {EMAIL} and {CARD}")
    )
    assert reply.status == 200, reply.body
    seen = model_saw(gateway)
    assert EMAIL not in seen
    assert seen.startswith("mail <EMAIL:")
    # The caller's own e-mail comes back; the card was redacted, never tokenized: it stays so.
    content = reply.json()["choices"][0]["message"]["content"]
    assert content == f"mail {EMAIL} and [REDACTED:CARD]"
    decision_id = gateway.model.requests()[-1].headers["x-extproc-decision-id"]
    event = gateway.wait_until(lambda: next((e for e in read_events([gateway.root / "audit"])
                                             if e.get("decision_id") == decision_id
                                             and "findings" in e), None))  # fmt: skip
    assert event is not None
    assert event["findings"]["response.RESTORED"] == 1
    assert EMAIL not in json.dumps(list(read_events([gateway.root / "audit"])))


def test_a_token_split_across_sse_events_is_restored(gateway: Gateway) -> None:
    for size in (1, 3, 7):
        gateway.model.chunk_chars = size
        try:
            reply = gateway.request(
                token=gateway.token(), source=SWEDEN, body=chat(f"write to {EMAIL}.", stream=True)
            )
        finally:
            gateway.model.chunk_chars = 4
        assert reply.status == 200
        events = frames_of(reply.body, False)
        assert text_of("chat", events) == f"write to {EMAIL}."
        assert sum(1 for e in events if isinstance(e, dict)) > 5  # it really streamed


def test_a_second_exchange_cannot_restore_the_first_ones_token(gateway: Gateway) -> None:
    gateway.model.clear()
    gateway.request(token=gateway.token(), source=SWEDEN, body=chat(f"mail {EMAIL}"))
    token = model_saw(gateway).removeprefix("mail ")
    assert token.startswith("<EMAIL:")
    # Another caller (or the same one, later) sends the token itself: it comes back as it is.
    other = gateway.token(sub="mallory")
    reply = gateway.request(token=other, source=SWEDEN, body=chat(f"what is {token}?"))
    assert reply.json()["choices"][0]["message"]["content"] == f"what is {token}?"
    streamed = gateway.request(
        token=other, source=SWEDEN, body=chat(f"what is {token}?", stream=True)
    )
    assert text_of("chat", frames_of(streamed.body, False)) == f"what is {token}?"
    assert EMAIL not in streamed.body.decode()
