"""Response bodies a profile does not inspect are never sent to the processor: after the request
headers it tells Envoy (``mode_override``) to leave them out. Request bodies always are: the
processor checks the model they name. Through the real Envoy: what
each side receives, how many messages Envoy sent, and the audit event's byte counts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from extproc.audit.read import read_events
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway

pytestmark = pytest.mark.e2e

SENSITIVE = "card 4111 1111 1111 1111, mail jane.doe@example.com"
PROFILES = """\
    prompts-only:
      directions: [request]
    answers-only:
      directions: [response]
  group_profiles:
    prompt-masking: prompts-only
    answer-masking: answers-only
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("skipped-bodies")
    config = e2e_config(geoip_database(root))
    anchor = "          reason: prompt injection attempts are blocked\n"
    assert anchor in config
    config = config.replace(anchor, anchor + PROFILES, 1)
    # The shipped routes name the profile "standard", which would win over group_profiles.
    config = config.replace("default_profile: standard", "default_profile: both-ways")
    config = config.replace("    standard:\n", "    both-ways:\n")
    gateway = Gateway(root, config_text=config, workers=1)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def closed(gateway: Gateway) -> list[dict[str, object]]:
    return [e for e in read_events([gateway.root / "audit"]) if e.get("kind") == "close"]


def exchange(gateway: Gateway, group: str, model: str) -> tuple[int, bytes, int, dict[str, object]]:
    """One chat request: (status, the reply's body, ext_proc messages Envoy sent, its closing
    audit event). One processor worker and one request at a time: the next event is its own."""

    def sent() -> int:
        stats = gateway.envoy_stats(r"ext_proc\.stream_msgs_sent$")
        assert stats, "Envoy reports no ext_proc message counter"
        return sum(stats.values())

    before, events_before = sent(), len(closed(gateway))
    reply = gateway.request(
        token=gateway.token(groups=("ml-eu", group)),
        body={"model": model, "messages": [{"role": "user", "content": SENSITIVE}]},
    )
    events = gateway.wait_until(lambda: closed(gateway)[events_before:], timeout=10)
    assert events, "no closing audit event"
    assert len(events) == 1, events
    return reply.status, reply.body, sent() - before, events[0]


def test_a_prompt_only_profile_masks_the_prompt_and_never_receives_the_answer(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    status, body, messages, event = exchange(gateway, "prompt-masking", "demo-leaky")
    assert status == 200, body
    seen = gateway.model.requests()[-1].body.decode()
    assert "4111 1111 1111 1111" not in seen
    assert "jane.doe@example.com" not in seen
    # The profile leaves answers alone: the model's own card number reaches the client as sent.
    assert "4111" in body.decode()
    assert messages == 3  # request headers, request body, response headers
    assert event["response_bytes"] == len(body)


def test_an_answer_only_profile_masks_the_answer_and_passes_the_prompt_unmasked(
    gateway: Gateway,
) -> None:
    """The prompt is still sent to the processor, which checks its model (never masks it)."""
    gateway.model.clear()
    status, body, messages, event = exchange(gateway, "answer-masking", "demo-echo")
    assert status == 200, body
    received = gateway.model.requests()[-1]
    assert json.loads(received.body)["messages"][0]["content"] == SENSITIVE
    assert "4111 1111 1111 1111" not in body.decode()
    assert "[REDACTED:CARD]" in json.loads(body)["choices"][0]["message"]["content"]
    assert messages == 4  # the request body too: its model is checked against the decision
    assert event["request_bytes"] == len(received.body)


def test_a_profile_that_inspects_both_ways_receives_all_four_messages(gateway: Gateway) -> None:
    status, body, messages, _event = exchange(gateway, "ml-eu", "demo-echo")
    assert status == 200, body
    assert "4111 1111 1111 1111" not in body.decode()
    assert messages == 4
