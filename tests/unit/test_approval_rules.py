"""The review rules, one test each, on a fixed clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from extproc.approval import rules
from extproc.approval.ids import new_approval_id, request_digest, scope_key
from extproc.approval.model import Approval, Person, Target
from extproc.approval.policy import ApprovalPolicy
from extproc.decision import Decision
from extproc.errors import ApprovalError, Code

T0 = 1_800_000_000.0
TWO_GROUPS = ApprovalPolicy(
    approver_groups=("security", "ml-leads"), thresholds=(("ml-leads", 1), ("security", 1))
)
ANY_TWO = ApprovalPolicy(approver_groups=("security", "ml-leads"), any_of=2)
ONE = ApprovalPolicy(approver_groups=("security",), any_of=1, max_grant_ttl_seconds=7200)

ALICE = Person("alice", "corp", ("ml-eu",))
SEC = Person("sam", "corp", ("security",))
SEC2 = Person("sue", "corp", ("security",))
LEAD = Person("lee", "corp", ("ml-leads",))
BOTH = Person("bo", "corp", ("security", "ml-leads", "staff"))
OUTSIDER = Person("olga", "corp", ("staff",))


def decision() -> Decision:
    return Decision(
        decision_id="d-1",
        request_id="r-1",
        effect="require_approval",
        rule="big-models",
        reason="large models need an approval",
        status=403,
        subject="alice",
        issuer="corp",
        groups=("ml-eu",),
        target_region="eu",
        model="gpt-big",
    )


def target() -> Target:
    digest = request_digest("POST", "/v1/chat", "gpt-big", b'{"model":"gpt-big"}')
    key = scope_key(
        "request", rule="big-models", issuer="corp", route="chat", model="gpt-big",
        request_digest=digest,
    )  # fmt: skip
    return Target("POST", "/v1/chat", "chat", "gpt-big", "eu", digest, key)


def pending(policy: ApprovalPolicy = ONE, justification: str = "eval run") -> Approval:
    return rules.open_approval(
        decision(),
        policy,
        approval_id=new_approval_id(),
        target=target(),
        justification=justification,
        now=T0,
    )


def refused(code: Code, call: object, *args: object, **kwargs: object) -> ApprovalError:
    with pytest.raises(ApprovalError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == code, caught.value.reason
    return caught.value


def approve(approval: Approval, who: Person, at: float = T0 + 1, **kw: object) -> Approval:
    args: dict[str, object] = {"reason": None, "ttl_seconds": None, "now": at, **kw}
    return rules.review(approval, who, "approve", **args)[0]  # type: ignore[arg-type]


def test_an_approval_opens_pending_with_its_requester_rule_and_clocks() -> None:
    approval = pending()
    assert approval.status == "pending"
    assert approval.requester == ALICE
    assert (approval.rule, approval.decision_id, approval.request_id) == (
        "big-models",
        "d-1",
        "r-1",
    )
    assert approval.expires_at == T0 + ONE.pending_ttl_seconds
    assert approval.justification == "eval run"
    assert approval.id.startswith("apr_")
    assert len(approval.id) == 26


def test_only_an_authenticated_caller_can_ask() -> None:
    refused(
        Code.MISSING_TOKEN,
        rules.open_approval,
        decision()._replace(subject=""),
        ONE,
        approval_id=new_approval_id(),
        target=target(),
        justification="",
        now=T0,
    )


def test_one_approver_of_any_of_one_grants_for_the_rules_ttl() -> None:
    approval, events = rules.review(
        pending(), SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 5
    )
    assert events == ("reviewed", "granted")
    assert approval.status == "approved"
    assert approval.grant_expires_at == T0 + 5 + ONE.grant_ttl_seconds
    assert approval.resolved_by == "sam"
    assert approval.version == 2
    assert approval.grant_active(T0 + 6)
    assert not approval.grant_active(T0 + 5 + ONE.grant_ttl_seconds)


def test_the_requester_never_reviews_even_as_an_approver() -> None:
    approval = pending()
    requester_as_approver = Person("alice", "corp", ("security",))
    refused(Code.SELF_APPROVAL, approve, approval, requester_as_approver)
    # Same subject from another identity provider: refused too (the safe mistake).
    refused(Code.SELF_APPROVAL, approve, approval, Person("alice", "other-idp", ("security",)))
    deny = rules.review
    refused(
        Code.SELF_APPROVAL, deny, approval, requester_as_approver, "deny",
        reason="no", ttl_seconds=None, now=T0,
    )  # fmt: skip


def test_only_members_of_the_approver_groups_review() -> None:
    # Someone who may not see the approval learns nothing of it: not found, as for a made-up
    # id, never the rule's name or the approval's state.
    error = refused(Code.APPROVAL_NOT_FOUND, approve, pending(), OUTSIDER)
    assert "big-models" not in error.reason
    resolved = approve(pending(), SEC)
    refused(Code.APPROVAL_NOT_FOUND, approve, resolved, OUTSIDER)
    refused(
        Code.APPROVAL_NOT_FOUND, rules.review, resolved, OUTSIDER, "deny",
        reason="no", ttl_seconds=None, now=T0 + 2,
    )  # fmt: skip


def test_one_review_per_reviewer() -> None:
    approval = approve(pending(TWO_GROUPS), SEC)
    assert approval.status == "pending"
    refused(Code.ALREADY_REVIEWED, approve, approval, SEC)
    # Another token of the same person (other groups) is still the same reviewer.
    refused(Code.ALREADY_REVIEWED, approve, approval, Person("sam", "corp", ("ml-leads",)))


def test_any_deny_wins_at_once_even_after_approvals() -> None:
    approval = approve(pending(ANY_TWO), SEC)
    denied, events = rules.review(
        approval, LEAD, "deny", reason="not this week", ttl_seconds=None, now=T0 + 2
    )
    assert events == ("reviewed", "denied")
    assert denied.status == "denied"
    assert (denied.resolve_reason, denied.resolved_by, denied.resolved_at) == (
        "not this week",
        "lee",
        T0 + 2,
    )
    assert denied.grant_expires_at is None
    assert not denied.grant_active(T0 + 3)


def test_a_resolved_request_takes_no_more_reviews() -> None:
    approved = approve(pending(), SEC)
    refused(Code.APPROVAL_NOT_PENDING, approve, approved, SEC2)
    error = refused(
        Code.APPROVAL_NOT_PENDING, rules.review, approved, SEC2, "deny",
        reason="late", ttl_seconds=None, now=T0 + 3,
    )  # fmt: skip
    assert "approved" in error.reason


def test_group_thresholds_all_must_be_met_by_distinct_people() -> None:
    one_seat = approve(pending(TWO_GROUPS), BOTH)
    assert one_seat.status == "pending"  # a member of both groups fills one seat
    assert one_seat.reviews[0].reviewer.groups == ("security", "ml-leads")  # only approver groups
    assert approve(one_seat, SEC).status == "approved"
    assert approve(approve(pending(TWO_GROUPS), SEC), SEC2).status == "pending"  # no ml-lead yet
    assert approve(approve(pending(TWO_GROUPS), SEC), LEAD).status == "approved"


def test_matching_seats_moves_an_earlier_approver_to_the_seat_only_they_can_fill() -> None:
    policy = ApprovalPolicy(
        approver_groups=("security", "ml-leads"), thresholds=(("ml-leads", 1), ("security", 1))
    )
    # BOTH approves first; SEC then takes the security seat and BOTH moves to ml-leads.
    assert approve(approve(pending(policy), BOTH), SEC).status == "approved"
    assert rules.thresholds_met(policy, ()) is False


def test_any_of_counts_distinct_approvers() -> None:
    approval = approve(pending(ANY_TWO), SEC)
    assert approval.status == "pending"
    assert approve(approval, LEAD).status == "approved"


def test_deny_and_revoke_need_a_reason_and_approve_when_the_rule_says_so() -> None:
    refused(
        Code.REASON_REQUIRED, rules.review, pending(), SEC, "deny",
        reason="  \n ", ttl_seconds=None, now=T0,
    )  # fmt: skip
    strict = replace(ONE, approve_reason_required=True)
    refused(Code.REASON_REQUIRED, approve, pending(strict), SEC)
    assert approve(pending(strict), SEC, reason="checked the eval plan").status == "approved"
    refused(Code.REASON_REQUIRED, rules.revoke, approve(pending(), SEC), SEC, reason="", now=T0 + 2)


def test_a_reason_is_cleaned_and_capped_at_4_kib() -> None:
    denied, _ = rules.review(
        pending(), SEC, "deny", reason="no\x1b[31m\u202e" + "é" * 5000, ttl_seconds=None, now=T0
    )
    assert denied.resolve_reason.startswith("no[31m")
    assert "\x1b" not in denied.resolve_reason
    assert "\u202e" not in denied.resolve_reason
    assert len(denied.resolve_reason.encode()) <= 4096


def test_an_approver_may_set_the_grant_ttl_never_beyond_the_cap() -> None:
    short = approve(pending(), SEC, at=T0 + 10, ttl_seconds=60.0)
    assert short.grant_expires_at == T0 + 70
    longer = approve(pending(), SEC, at=T0 + 10, ttl_seconds=7200.0)  # up to the cap
    assert longer.grant_expires_at == T0 + 7210
    refused(Code.GRANT_TTL_INVALID, approve, pending(), SEC, ttl_seconds=7201.0)
    refused(Code.GRANT_TTL_INVALID, approve, pending(), SEC, ttl_seconds=0.0)


def test_the_shortest_ttl_of_the_approvers_wins() -> None:
    approval = approve(pending(ANY_TWO), SEC, ttl_seconds=120.0)
    approved = approve(approval, LEAD, at=T0 + 2)
    assert approved.grant_expires_at == T0 + 2 + 120.0
    assert rules.grant_ttl(ANY_TWO, approved.reviews) == 120.0


def test_a_pending_request_expires_and_then_refuses_reviews() -> None:
    approval = pending()
    assert rules.expire(approval, T0 + 10) is None
    late = T0 + ONE.pending_ttl_seconds
    refused(Code.APPROVAL_EXPIRED, approve, approval, SEC, at=late)
    expired = rules.expire(approval, late + 30)
    assert expired is not None
    assert (expired.status, expired.resolved_at) == ("expired", late)
    assert expired.version == approval.version + 1
    refused(Code.APPROVAL_NOT_PENDING, approve, expired, SEC, at=late + 31)


def test_a_grant_expires_and_the_request_is_held_again() -> None:
    approved = approve(pending(), SEC, at=T0 + 1)
    end = approved.grant_expires_at
    assert end is not None
    assert rules.expire(approved, end - 1) is None
    expired = rules.expire(approved, end + 5)
    assert expired is not None
    assert (expired.status, expired.resolved_at, expired.resolve_reason) == (
        "expired",
        end,
        "the grant ran out",
    )
    assert not expired.grant_active(end - 1)


def test_approvers_revoke_a_grant_and_requesters_withdraw_their_own() -> None:
    approved = approve(pending(), SEC)
    revoked = rules.revoke(approved, SEC2, reason="incident over", now=T0 + 60)
    assert (revoked.status, revoked.resolved_by, revoked.resolve_reason) == (
        "revoked",
        "sue",
        "incident over",
    )
    assert not revoked.grant_active(T0 + 61)
    withdrawn = rules.revoke(pending(), ALICE, reason="wrong model", now=T0 + 1)
    assert withdrawn.status == "revoked"
    refused(Code.APPROVAL_NOT_FOUND, rules.revoke, approved, OUTSIDER, reason="x", now=T0 + 2)
    refused(Code.APPROVAL_NOT_PENDING, rules.revoke, revoked, SEC, reason="again", now=T0 + 62)
    # Not even a resolved approval's state shows to whoever may not see it.
    refused(Code.APPROVAL_NOT_FOUND, rules.revoke, revoked, OUTSIDER, reason="x", now=T0 + 63)


def test_the_same_subject_at_another_issuer_is_someone_else() -> None:
    approval = pending()
    namesake = Person("alice", "other-idp", ("ml-eu",))
    assert not rules.may_view(approval, namesake)
    refused(Code.APPROVAL_NOT_FOUND, rules.revoke, approval, namesake, reason="x", now=T0 + 1)
    approved = approve(approval, SEC)
    refused(Code.APPROVAL_NOT_FOUND, rules.revoke, approved, namesake, reason="x", now=T0 + 2)
    # The requester at their own issuer still withdraws; an approver namesake still reviews
    # nothing of their namesake's (self-review stays subject-only, the safe mistake).
    assert rules.revoke(approval, ALICE, reason="done", now=T0 + 1).status == "revoked"
    approver_namesake = Person("alice", "other-idp", ("security",))
    assert rules.may_view(approval, approver_namesake)
    refused(Code.SELF_APPROVAL, approve, approval, approver_namesake)


def test_a_grant_that_ran_out_cannot_be_revoked() -> None:
    approved = approve(pending(), SEC)
    assert approved.grant_expires_at is not None
    error = refused(
        Code.APPROVAL_NOT_PENDING, rules.revoke, approved, SEC,
        reason="x", now=approved.grant_expires_at + 1,
    )  # fmt: skip
    assert "expired" in error.reason


def test_visibility_is_the_requester_and_the_approvers() -> None:
    approval = pending()
    assert rules.may_view(approval, ALICE)
    assert rules.may_view(approval, SEC)
    assert not rules.may_view(approval, OUTSIDER)
    assert not rules.may_view(approval, Person("alice", "other-idp", ()))


def test_justification_required_and_capped_by_the_rule() -> None:
    strict = replace(ONE, justification_required=True, justification_max_bytes=24)
    refused(Code.JUSTIFICATION_REQUIRED, pending, strict, "   ")
    refused(Code.JUSTIFICATION_TOO_LONG, pending, strict, "x" * 25)
    assert pending(strict, "line one\nline\ttwo").justification == "line one line two"
    assert pending(strict, "\x00\x07ok\u202e").justification == "ok"
