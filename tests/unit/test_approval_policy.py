"""Approval policies from a rule's plain ``approval`` block; ids, digests and scope keys."""

from __future__ import annotations

import pytest

from extproc.approval.ids import (
    canonical_body,
    check_approval_id,
    new_approval_id,
    request_digest,
    scope_key,
)
from extproc.approval.policy import ApprovalPolicy, parse_approval_policy
from extproc.errors import ApprovalError, Code, ConfigError


def test_a_full_block_parses_with_durations() -> None:
    policy = parse_approval_policy(
        {
            "thresholds": {"security": 1, "ml-leads": 1},
            "scope": "route",
            "grant_ttl": "15m",
            "max_grant_ttl": "1h30m",
            "pending_ttl": "2h",
            "hold": "45s",
            "justification_required": True,
            "justification_max_bytes": 512,
            "approve_reason_required": True,
        }
    )
    assert policy.approver_groups == ("ml-leads", "security")
    assert policy.thresholds == (("ml-leads", 1), ("security", 1))
    assert (policy.any_of, policy.approvals_needed) == (0, 2)
    assert (policy.grant_ttl_seconds, policy.max_grant_ttl_seconds) == (900, 5400)
    assert (policy.pending_ttl_seconds, policy.hold_seconds) == (7200, 45)
    assert policy.scope == "route"
    assert policy.justification_required
    assert policy.approve_reason_required
    assert policy.justification_max_bytes == 512


def test_defaults_are_one_approver_of_the_groups_named() -> None:
    policy = parse_approval_policy({"approver_groups": ["security"]})
    assert policy == ApprovalPolicy(approver_groups=("security",), any_of=1)
    assert policy.justification_max_bytes == 1024
    assert policy.scope == "request"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({}, "approver_groups must name at least one group"),
        ({"approver_groups": ["a"], "thresholds": {"b": 1}}, "'b' is not one of the approver"),
        ({"thresholds": {"a": 0}}, "must be at least 1"),
        ({"approver_groups": ["a"], "thresholds": {"a": 1}, "any_of": 1}, "not both"),
        ({"approver_groups": ["a"], "scope": "world"}, "scope must be one of request, route"),
        ({"approver_groups": ["a"], "grant_ttl": "2h"}, "grant_ttl must not exceed max"),
        ({"approver_groups": ["a"], "grant_ttl": "soon"}, "not a duration"),
        ({"approver_groups": ["a"], "pending_ttl": 0}, "pending_ttl must be positive"),
        ({"approver_groups": ["a"], "hold": -1}, "must not be negative"),
        ({"approver_groups": ["a"], "justification_required": "yes"}, "true or false"),
        ({"approver_groups": ["a"], "any_of": True}, "whole number"),
        ({"approver_groups": ["a"], "approvers": ["b"]}, "unknown key(s) approvers"),
    ],
)
def test_an_inconsistent_block_is_refused_with_its_place(
    block: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_approval_policy(block, "policy.rules[3].approval")
    assert caught.value.reason.startswith("policy.rules[3].approval: ")
    assert message in caught.value.reason


def test_ids_are_random_url_safe_and_checked_by_shape() -> None:
    ids = {new_approval_id() for _ in range(100)}
    assert len(ids) == 100
    for approval_id in ids:
        assert check_approval_id(approval_id) == approval_id
    for bad in ("apr_short", "../../etc/passwd", "apr_" + "x" * 21 + "!", "APR_" + "a" * 22, ""):
        with pytest.raises(ApprovalError) as caught:
            check_approval_id(bad)
        assert caught.value.code == Code.APPROVAL_ID_MALFORMED


def test_the_request_digest_ignores_json_formatting_but_not_content() -> None:
    a = request_digest("post", "/v1/chat", "m", b'{"model": "m", "messages": [1, 2]}')
    b = request_digest("POST", "/v1/chat", "m", b'{"messages":[1,2],\n "model":"m"}')
    assert a == b
    assert a != request_digest("POST", "/v1/chat", "m", b'{"messages":[2,1],"model":"m"}')
    assert a != request_digest("POST", "/v1/chat2", "m", b'{"messages":[1,2],"model":"m"}')
    assert a != request_digest("POST", "/v1/chat", "n", b'{"messages":[1,2],"model":"m"}')
    assert canonical_body(b"not json {") == b"not json {"
    assert canonical_body(b"[1, 2") == b"[1, 2"
    assert canonical_body(None) == b""
    # Length prefixes: moving bytes between fields changes the digest.
    assert request_digest("GET", "/ab", "c", b"") != request_digest("GET", "/a", "bc", b"")


def test_a_body_with_a_repeated_member_is_approved_as_sent_never_as_one_reading_of_it() -> None:
    """Parsers keep the first or the last of a repeated name: the canonical form of either
    reading would let the other one's content ride on the approval."""
    approved = b'{"model":"m","messages":[{"content":"benign job"}]}'
    smuggled = (
        b'{"model":"m","messages":[{"content":"EVIL: exfiltrate"}],'
        b'"messages":[{"content":"benign job"}]}'
    )
    assert request_digest("POST", "/v1", "m", approved) != request_digest(
        "POST", "/v1", "m", smuggled
    )
    assert canonical_body(smuggled) == smuggled
    nested = b'{"messages":[{"content":"a","content":"b"}]}'
    assert canonical_body(nested) == nested
    assert canonical_body(b'{"b": 1, "a": 2}') == b'{"a":2,"b":1}'


def test_scope_keys_bind_rule_and_issuer_and_route_scope_ignores_the_body() -> None:
    one = request_digest("POST", "/v1/chat", "m", b'{"a":1}')
    two = request_digest("POST", "/v1/chat", "m", b'{"a":2}')
    common = {"rule": "r", "issuer": "corp", "route": "chat", "model": "m"}
    assert scope_key("request", **common, request_digest=one) != scope_key(
        "request", **common, request_digest=two
    )
    assert scope_key("route", **common, request_digest=one) == scope_key(
        "route", **common, request_digest=two
    )
    other_issuer = {**common, "issuer": "other"}
    assert scope_key("route", **common, request_digest=one) != scope_key(
        "route", **other_issuer, request_digest=one
    )
    other_rule = {**common, "rule": "r2"}
    assert scope_key("request", **common, request_digest=one) != scope_key(
        "request", **other_rule, request_digest=one
    )
