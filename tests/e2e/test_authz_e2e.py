"""authz through the real Envoy: who, from where, to where; answers, metadata, reload, failure."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.harness import MODEL_KEY, Gateway

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"  # GeoIP2-Country-Test: SE (registered DE)
BRITAIN = "81.2.69.160"  # GB (registered US)
UNITED_STATES = "216.160.83.56"  # US (registered GB)
NOT_IN_DATABASE = "1.1.1.1"


def test_an_allowed_caller_reaches_the_model_with_the_gateway_credential_only(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    token = gateway.token("alice", groups=("ml-eu",))
    reply = gateway.request(token=token, source=SWEDEN, headers={"x-api-key": "caller-key"})
    assert reply.status == 200, reply.body
    assert reply.json()["choices"][0]["message"]["content"]
    seen = gateway.model.requests()[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {MODEL_KEY}"
    assert token not in json.dumps(seen.headers)
    assert "x-api-key" not in seen.headers
    assert len(seen.headers["x-extproc-decision-id"]) == 32


def test_the_client_address_is_the_one_envoy_computed_and_the_decision_reaches_the_access_log(
    gateway: Gateway,
) -> None:
    gateway.model.clear()
    reply = gateway.request(
        "/eu/v1/chat/completions?access_token=s3cr3t-in-the-url",
        token=gateway.token(),
        source=SWEDEN,
    )
    assert reply.status == 200
    decision_id = gateway.model.requests()[-1].headers["x-extproc-decision-id"]

    def access_log_entry() -> dict[str, str] | None:
        for line in (gateway.root / "envoy.log").read_text(errors="replace").splitlines():
            if decision_id in line and line.startswith("{"):
                entry: dict[str, str] = json.loads(line)
                return entry
        return None

    entry = gateway.wait_until(access_log_entry)
    assert entry is not None, "the access log has no line with the decision id"
    # Envoy trusted one x-forwarded-for hop: its computed client address is the XFF value, and
    # authz mapped that address (not the TCP peer 127.0.0.1) to Sweden.
    assert entry["client"] == SWEDEN
    assert entry["source_country"] == "SE"
    assert entry["source_region"] == "eu"
    assert entry["rule"] == "eu-team-to-eu"
    assert entry["subject"] == "alice"
    assert entry["target_region"] == "eu"
    assert (entry["effect"], entry["outcome"]) == ("allow", "allowed")
    assert entry["details"] == "via_upstream"  # the model answered
    assert entry["path"] == "/eu/v1/chat/completions"
    assert "s3cr3t-in-the-url" not in json.dumps(entry)


def test_a_client_cannot_choose_its_address_with_the_header_envoy_hands_to_authz(
    gateway: Gateway,
) -> None:
    token = gateway.token()
    from_britain = gateway.request(
        token=token, source=BRITAIN, headers={"x-extproc-client-address": SWEDEN}
    )
    assert from_britain.status == 403
    assert from_britain.json()["rule"] == "source-region-not-allowed"
    from_sweden = gateway.request(
        token=token, source=SWEDEN, headers={"x-extproc-client-address": BRITAIN}
    )
    assert from_sweden.status == 200


@pytest.mark.parametrize(
    ("source", "path", "groups", "claims", "rule"),
    [
        (BRITAIN, "/eu/v1/chat/completions", ("ml-eu",), {}, "source-region-not-allowed"),
        (NOT_IN_DATABASE, "/eu/v1/chat/completions", ("ml-eu",), {}, "unknown-source"),
        (
            SWEDEN,
            "/eu/v1/chat/completions",
            ("ml-eu",),
            {"region": "US"},
            "declared-region-mismatch",
        ),
        (SWEDEN, "/us/v1/chat/completions", ("ml-eu",), {}, "target-region-not-allowed"),
    ],
    ids=["disallowed-country", "unknown-address", "declared-region-mismatch", "disallowed-target"],
)
def test_policy_denials_are_403_json_naming_the_rule(
    gateway: Gateway,
    source: str,
    path: str,
    groups: tuple[str, ...],
    claims: dict[str, str],
    rule: str,
) -> None:
    gateway.model.clear()
    reply = gateway.request(
        path, token=gateway.token("alice", groups=groups, **claims), source=source
    )
    assert reply.status == 403, reply.body
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["error"] == "forbidden"
    assert body["rule"] == rule
    assert body["reason"]
    assert body["request_id"]
    assert gateway.model.requests() == []


def test_a_us_caller_reaches_the_us_model_from_the_us(gateway: Gateway) -> None:
    reply = gateway.request(
        "/us/v1/chat/completions",
        token=gateway.token("bob", groups=("ml-us",)),
        source=UNITED_STATES,
    )
    assert reply.status == 200, reply.body


def test_groups_are_read_from_a_nested_claim_path(gateway: Gateway) -> None:
    token = gateway.issuer.mint(
        "carol",
        groups=(),
        audience="extproc-e2e",
        extra_claims={"realm_access": {"roles": ["ml-eu"]}},
    )
    assert gateway.request(token=token, source=SWEDEN).status == 200


def test_a_request_without_a_token_is_401_with_a_bearer_challenge(gateway: Gateway) -> None:
    reply = gateway.request(token=None, source=SWEDEN)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="extproc"'
    body = reply.json()
    assert (body["error"], body["rule"]) == ("missing_token", "identity")


def test_the_demo_envoy_validates_and_the_access_log_is_json(gateway: Gateway) -> None:
    assert gateway.envoy is not None
    assert "LIVE" in gateway.envoy.admin("/ready")


def test_a_bad_config_reload_keeps_the_last_good_policy_serving(gateway: Gateway) -> None:
    good = gateway.config_path.read_text()
    try:
        gateway.config_path.write_text(good.replace("effect: allow", "effect: permit", 1))
        gateway.wait_until(lambda: "config reload failed" in gateway.authz_log(), timeout=10)
        assert "config reload failed" in gateway.authz_log()
        assert "effect: expected one of allow, deny, require_approval" in gateway.authz_log()
        assert gateway.request(token=gateway.token(), source=SWEDEN).status == 200
    finally:
        gateway.config_path.write_text(good)


def test_a_good_config_reload_changes_decisions_without_a_restart(gateway: Gateway) -> None:
    good = gateway.config_path.read_text()
    stricter = good.replace('eu: [DE, FR, SE, NL, "NO"]', 'eu: [DE, FR, NL, "NO"]')
    assert stricter != good
    try:
        gateway.config_path.write_text(stricter)
        denied = gateway.wait_until(
            lambda: gateway.request(token=gateway.token(), source=SWEDEN).status == 403
        )
        assert denied, "the reloaded policy never took effect"
    finally:
        gateway.config_path.write_text(good)
        assert gateway.wait_until(
            lambda: gateway.request(token=gateway.token(), source=SWEDEN).status == 200
        )


def test_envoy_denies_when_authz_is_down_fail_closed(gateway: Gateway) -> None:
    gateway.model.clear()
    gateway.stop_authz()
    try:
        deadline = time.monotonic() + 10
        reply = gateway.request(token=gateway.token(), source=SWEDEN)
        while reply.status == 200 and time.monotonic() < deadline:
            reply = gateway.request(token=gateway.token(), source=SWEDEN)
        assert reply.status == 503
        assert gateway.model.requests() == []
    finally:
        gateway.start_authz()
    assert gateway.wait_until(
        lambda: gateway.request(token=gateway.token(), source=SWEDEN).status == 200
    )


def test_a_deny_rule_on_a_header_is_not_passed_by_listing_another_value(
    gateway: Gateway,
) -> None:
    token = gateway.token()
    denied = gateway.request(token=token, source=SWEDEN, headers={"x-tenant": "red"})
    assert denied.status == 403
    assert denied.json()["rule"] == "no-red-tenant"
    listed = gateway.request(token=token, source=SWEDEN, headers={"x-tenant": "blue, red"})
    assert listed.status == 403  # any value of a list or a repeated header counts
    assert listed.json()["rule"] == "no-red-tenant"
    assert gateway.request(token=token, source=SWEDEN, headers={"x-tenant": "blue"}).status == 200
