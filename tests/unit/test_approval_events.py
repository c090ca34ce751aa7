"""Audit events, the stored shape and webhook payloads of approvals."""

from __future__ import annotations

import json

import pytest

from extproc.approval import rules
from extproc.approval.codec import approval_from_dict, approval_to_dict
from extproc.approval.events import approval_event
from extproc.approval.model import Person
from extproc.approval.notice import notice_body, sign, verify_signature
from extproc.audit.event import EVENT_FIELDS
from tests.unit.test_approval_rules import ANY_TWO, LEAD, ONE, SEC, SEC2, T0, decision, pending

SECRET_WORDS = "my manager said yes, ticket SEC-4411"


def test_the_stored_shape_round_trips_every_field() -> None:
    approval = rules.review(pending(ANY_TWO), SEC, "approve", reason="ok", ttl_seconds=60.0, now=T0)
    approved = rules.review(approval[0], LEAD, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    for value in (pending(), approval[0], approved[0]):
        data = json.loads(json.dumps(approval_to_dict(value)))
        assert approval_from_dict(data) == value


def test_a_malformed_stored_document_is_refused() -> None:
    data = approval_to_dict(pending())
    for broken in (
        {**data, "format": 99},
        {**data, "status": "maybe"},
        {k: v for k, v in data.items() if k != "target"},
        {**data, "policy": {**data["policy"], "any_of": 0}},
        {**data, "reviews": [{"reviewer": {}, "verdict": "approve"}]},
    ):
        with pytest.raises(ValueError):
            approval_from_dict(broken)


def test_every_event_kind_has_only_fields_the_writer_accepts_and_no_justification() -> None:
    opened = pending(justification=SECRET_WORDS)
    reviewed, _ = rules.review(opened, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    denied, _ = rules.review(pending(), SEC, "deny", reason="not now", ttl_seconds=None, now=T0 + 1)
    revoked = rules.revoke(reviewed, SEC2, reason="done", now=T0 + 2)
    expired = rules.expire(pending(), T0 + 10_000)
    assert expired is not None
    use = decision()._replace(request_id="r-2", decision_id="d-2", source_address="10.0.0.1")
    events = {
        "requested": approval_event("requested", opened, time="t", service="authz"),
        "reviewed": approval_event("reviewed", reviewed, time="t", service="approvals"),
        "granted": approval_event("granted", reviewed, time="t", service="approvals"),
        "denied": approval_event("denied", denied, time="t", service="approvals"),
        "expired": approval_event("expired", expired, time="t", service="approvals"),
        "revoked": approval_event("revoked", revoked, time="t", service="approvals"),
        "used": approval_event("used", reviewed, time="t", service="authz", decision=use),
    }
    for kind, event in events.items():
        assert set(event) <= EVENT_FIELDS, kind
        assert event["approval_event"] == kind
        assert event["effect"] == "require_approval"
        assert SECRET_WORDS not in json.dumps(event), kind
    requested = events["requested"]
    assert requested["outcome"] == "held"
    assert requested["approval_status"] == "pending"
    assert requested["justification_bytes"] == len(SECRET_WORDS)
    assert len(requested["justification_digest"]) == 64
    assert requested["request_digest"] == opened.target.digest
    assert events["reviewed"]["reviewer"] == "sam"
    assert events["reviewed"]["review"] == "approve"
    assert events["granted"]["grant_expires_at"].endswith("Z")
    assert events["denied"]["outcome"] == "denied"
    assert events["denied"]["approval_reason"] == "not now"
    assert events["revoked"]["reviewer"] == "sue"
    assert events["expired"]["approval_reason"] == "nobody decided within the pending time"
    assert events["used"]["outcome"] == "allowed"
    assert (events["used"]["request_id"], events["used"]["decision_id"]) == ("r-2", "d-2")


def test_the_json_notice_carries_the_approval_without_its_scope_key() -> None:
    approval = pending(justification="eval <run> & more")
    body = json.loads(notice_body("requested", approval, version=7, time="t", fmt="json"))
    assert (body["event"], body["version"], body["time"]) == ("requested", 7, "t")
    assert body["approval"]["id"] == approval.id
    assert body["approval"]["justification"] == "eval <run> & more"
    assert "scope_key" not in body["approval"]["target"]


def test_the_slack_notice_has_text_and_blocks_and_escapes_peoples_words() -> None:
    approval = pending(justification="see <!channel> & <https://evil|here>")
    body = json.loads(notice_body("requested", approval, version=1, time="t", fmt="slack"))
    assert body["text"].startswith("Approval requested: alice")
    section = body["blocks"][0]["text"]["text"]
    assert approval.id in section
    assert "&lt;!channel&gt; &amp; &lt;https://evil|here&gt;" in section
    assert "<!channel>" not in json.dumps(body)
    denied, _ = rules.review(approval, SEC, "deny", reason="no", ttl_seconds=None, now=T0 + 1)
    decided = json.loads(notice_body("denied", denied, version=2, time="t", fmt="slack"))
    assert "*Status:* denied by sam: no" in decided["blocks"][0]["text"]["text"]


def test_signatures_verify_in_constant_time_and_refuse_tampering_and_replays() -> None:
    key = b"k" * 32
    body = b'{"event":"requested"}'
    header = sign(body, key, 1_800_000_000)
    assert header.startswith("t=1800000000,v1=")
    assert verify_signature(header, body, key, now=1_800_000_010)
    assert not verify_signature(header, body + b" ", key, now=1_800_000_010)
    assert not verify_signature(header, body, b"x" * 32, now=1_800_000_010)
    assert not verify_signature(header, body, key, now=1_800_000_000 + 301)
    assert not verify_signature("v1=abc", body, key, now=1_800_000_000)
    assert not verify_signature("t=soon,v1=abc", body, key, now=1_800_000_000)


def test_the_events_module_never_needs_a_person_beyond_the_approval() -> None:
    # A reviewer's other groups never reach the trail: reviews keep approver groups only.
    outsider_groups = Person("sam", "corp", ("security", "payroll"))
    reviewed, _ = rules.review(
        pending(ONE), outsider_groups, "approve", reason=None, ttl_seconds=None, now=T0
    )
    assert "payroll" not in json.dumps(approval_to_dict(reviewed))
