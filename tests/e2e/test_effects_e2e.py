"""One vocabulary of effects through the real Envoy: each effect a rule can have, and what the
audit trail then says happened (allowed, denied, held, dry_run), from authz and the processor
alike, tied together by the decision id that crossed Envoy's metadata."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from extproc.audit.read import read_events
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
US = "198.51.100.7"
APPROVAL_RULE = """  rules:
    - name: fine-tunes-need-approval
      when: {path: "/eu/v1/fine-tunes*"}
      effect: require_approval
      reason: fine-tuning on eu data needs a human approval
      approval: {approver_groups: [approvers], any_of: 1, hold: 0}
    - name: shadow-no-previews
      when: {model: "preview-*"}
      effect: deny
      enforce: false
      reason: previews will be denied
"""


def effects_config(database: Any) -> str:
    return e2e_config(database).replace("  rules:\n", APPROVAL_RULE, 1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("effects")
    gateway = Gateway(root, config_text=effects_config(geoip_database(root)), workers=1)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


def events_for(gateway: Gateway, request_id: str, count: int = 1) -> list[dict[str, Any]]:
    def find() -> list[dict[str, Any]] | None:
        found = [
            event
            for event in read_events([gateway.root / "audit"])
            if event.get("request_id") == request_id
        ]
        return found if len(found) >= count else None

    if gateway.wait_until(find, timeout=10) is None:
        return []
    time.sleep(0.3)  # the writers flush every 10 ms: a second event would be there by now
    return find() or []


def test_allow_is_recorded_as_allowed_by_the_processor_with_the_decision_authz_made(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    reply = gateway.request(token=gateway.token(), source=SWEDEN)
    assert reply.status == 200, reply.body
    seen = gateway.model.requests()[-1].headers
    (event,) = events_for(gateway, seen["x-request-id"])
    assert (event["service"], event["effect"], event["outcome"]) == (
        "processor",
        "allow",
        "allowed",
    )
    assert event["rule"] == "eu-team-to-eu"
    assert event["decision_id"] == seen["x-extproc-decision-id"]
    assert (event["subject"], event["groups"], event["source_country"]) == (
        "alice",
        ["ml-eu"],
        "SE",
    )


def test_deny_is_answered_by_authz_and_recorded_as_denied(gateway: Gateway) -> None:
    gateway.model.clear()
    reply = gateway.request(token=gateway.token(), source=US)
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["rule"]) == ("forbidden", "source-region-not-allowed")
    (event,) = events_for(gateway, body["request_id"])
    assert (event["service"], event["effect"], event["outcome"]) == ("authz", "deny", "denied")
    assert (event["error"], event["status"]) == ("forbidden", 403)
    assert gateway.model.requests() == []


def test_require_approval_is_recorded_as_held_and_never_reaches_the_model(gateway: Gateway) -> None:
    gateway.model.clear()
    reply = gateway.request("/eu/v1/fine-tunes", token=gateway.token(), source=SWEDEN)
    assert reply.status == 403
    body = reply.json()
    assert (body["error"], body["rule"]) == ("approval_required", "fine-tunes-need-approval")
    assert body["approval_id"]
    (event,) = events_for(gateway, body["request_id"])
    assert (event["service"], event["effect"], event["outcome"]) == (
        "processor",
        "require_approval",
        "held",
    )
    assert (event["error"], event["approval_id"]) == ("approval_required", body["approval_id"])
    assert gateway.model.requests() == []


def test_a_dry_run_rule_is_carried_to_the_processor_while_the_request_goes_on(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    body = {"model": "preview-7", "messages": [{"role": "user", "content": "Hello"}]}
    reply = gateway.request(token=gateway.token(), source=SWEDEN, body=body)
    assert reply.status == 200, reply.body
    (event,) = events_for(gateway, gateway.model.requests()[-1].headers["x-request-id"])
    assert (event["outcome"], event["rule"]) == ("allowed", "eu-team-to-eu")
    assert event["dry_run"] == [
        {"rule": "shadow-no-previews", "effect": "deny", "reason": "previews will be denied"}
    ]


def test_a_policy_in_dry_run_lets_a_denied_request_through_recorded_as_dry_run(
    gateway: Gateway, tmp_path: Any
) -> None:
    original = gateway.config_path.read_text(encoding="utf-8")
    dry = original.replace("policy:\n", "policy:\n  enforce: false\n", 1)
    try:
        gateway.config_path.write_text(dry, encoding="utf-8")
        reply = gateway.wait_until(
            lambda: (r := gateway.request(token=gateway.token(), source=US)).status == 200 and r,
            timeout=15,
        )
        assert reply, "the dry-run policy was not loaded"
        (event,) = events_for(gateway, gateway.model.requests()[-1].headers["x-request-id"])
        assert (event["service"], event["effect"], event["outcome"]) == (
            "processor",
            "deny",
            "dry_run",
        )
        assert (event["rule"], event["enforced"]) == ("source-region-not-allowed", False)
    finally:
        gateway.config_path.write_text(original, encoding="utf-8")
        gateway.wait_until(
            lambda: gateway.request(token=gateway.token(), source=US).status == 403, timeout=15
        )
