"""The review rules. Pure: each function takes an approval and the time and returns the next
approval, or raises ``ApprovalError`` with the stable code of the refusal.

Rules (each has a test):
- Only members of the rule's approver groups review; the groups a review counts for are the
  reviewer's groups at review time, as their token says.
- A person is their issuer and subject together: only the requester's own identity provider
  vouches for the requester, so seeing an approval (``may_view``) and withdrawing it as its
  requester match on both. Whoever may not see an approval learns nothing of it from any
  action either: every action checks visibility first and refuses with
  ``approval_not_found``, as for an id that does not exist.
- The requester never reviews their own request, whatever groups they are in (no admin
  exception). Here requester and reviewer are compared by subject alone, across issuers:
  refusing a look-alike subject from another identity provider is the safe mistake (it only
  ever takes a review away, never grants one).
- One review per reviewer (by subject alone, across issuers, for the same reason: one person
  with accounts at two providers fills one seat). A resolved request takes no more reviews.
- Any deny resolves the request at once. Approvals resolve it when the thresholds are met:
  ``any_of`` N distinct approvers, or per group thresholds met by *distinct* approvers (one
  person in both ``security`` and ``ml-leads`` fills one seat, not two).
- A denial and a revocation need a reason; an approval needs one when the rule says so.
- An approver may set the grant's TTL, never beyond the rule's cap; the shortest TTL any
  approving reviewer set wins (those who set none accept the rule's ``grant_ttl``).
- A pending request past its pending TTL is expired, and an approved one past its grant's end;
  a pending or granted request may be revoked by an approver or withdrawn by its requester.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from extproc.approval import text
from extproc.approval.ids import check_approval_id
from extproc.approval.model import (
    Approval,
    EventKind,
    Person,
    Review,
    Status,
    Target,
    Verdict,
)
from extproc.approval.policy import ApprovalPolicy
from extproc.decision import Decision
from extproc.errors import ApprovalError, Code


def open_approval(
    decision: Decision,
    policy: ApprovalPolicy,
    *,
    approval_id: str,
    target: Target,
    justification: str | None,
    now: float,
) -> Approval:
    """A pending approval for the request ``decision`` holds (its effect ``require_approval``).

    Raises ``justification_required`` / ``justification_too_long`` for the requester."""
    if not decision.subject:
        raise ApprovalError(
            "only an authenticated caller can ask for an approval", code=Code.MISSING_TOKEN
        )
    return Approval(
        id=check_approval_id(approval_id),
        status="pending",
        rule=decision.rule,
        rule_reason=decision.reason,
        requester=Person(decision.subject, decision.issuer, tuple(decision.groups)),
        target=target,
        policy=policy,
        justification=text.justification(justification, policy),
        created_at=now,
        expires_at=now + policy.pending_ttl_seconds,
        decision_id=decision.decision_id,
        request_id=decision.request_id,
    )


def is_approver(policy: ApprovalPolicy, person: Person) -> bool:
    return not set(policy.approver_groups).isdisjoint(person.groups)


def is_requester(approval: Approval, person: Person) -> bool:
    """The same person who asked: the same subject at the same issuer (a subject alone names
    nobody: two identity providers may each have an ``alice``)."""
    requester = approval.requester
    return person.subject == requester.subject and person.issuer == requester.issuer


def may_view(approval: Approval, person: Person) -> bool:
    """Its requester and its approvers see an approval; nobody else learns it exists."""
    return is_requester(approval, person) or is_approver(approval.policy, person)


def _check_visible(approval: Approval, person: Person) -> None:
    """An approval the person may not see does not exist for them, whatever they try."""
    if not may_view(approval, person):
        raise ApprovalError(f"no approval {approval.id}", code=Code.APPROVAL_NOT_FOUND)


def review(
    approval: Approval,
    reviewer: Person,
    verdict: Verdict,
    *,
    reason: str | None,
    ttl_seconds: float | None,
    now: float,
) -> tuple[Approval, tuple[EventKind, ...]]:
    """Record one review. Returns the next approval and what happened (``reviewed``, then
    ``granted`` or ``denied`` when this review resolved it)."""
    _check_visible(approval, reviewer)
    _check_pending(approval, now)
    if reviewer.subject == approval.requester.subject:
        raise ApprovalError("you cannot review your own request", code=Code.SELF_APPROVAL)
    if not is_approver(approval.policy, reviewer):
        raise ApprovalError(
            f"you are in none of the approver groups of rule {approval.rule!r}",
            code=Code.NOT_AN_APPROVER,
        )
    if any(earlier.reviewer.subject == reviewer.subject for earlier in approval.reviews):
        raise ApprovalError("you have already reviewed this request", code=Code.ALREADY_REVIEWED)
    policy = approval.policy
    if verdict == "deny":
        said = text.reason(reason, required=True, what="a denial")
        ttl_seconds = None
    else:
        said = text.reason(reason, required=policy.approve_reason_required, what="an approval")
        _check_ttl(policy, ttl_seconds)
    counted = Person(
        reviewer.subject,
        reviewer.issuer,
        tuple(group for group in policy.approver_groups if group in reviewer.groups),
    )
    reviews = (*approval.reviews, Review(counted, verdict, said, now, ttl_seconds))
    reviewed = replace(approval, reviews=reviews, version=approval.version + 1)
    if verdict == "deny":
        return _resolve(reviewed, "denied", said, reviewer.subject, now), ("reviewed", "denied")
    if not thresholds_met(policy, reviews):
        return reviewed, ("reviewed",)
    approved = _resolve(reviewed, "approved", said, reviewer.subject, now)
    grant = replace(approved, grant_expires_at=now + grant_ttl(policy, reviews))
    return grant, ("reviewed", "granted")


def revoke(approval: Approval, actor: Person, *, reason: str | None, now: float) -> Approval:
    """End a grant early, or withdraw a pending request."""
    _check_visible(approval, actor)
    if not (approval.pending and now < approval.expires_at) and not approval.grant_active(now):
        raise ApprovalError(
            f"the approval is {_status_now(approval, now)}; there is nothing to revoke",
            code=Code.APPROVAL_NOT_PENDING,
        )
    if not is_requester(approval, actor) and not is_approver(approval.policy, actor):
        raise ApprovalError(
            f"you are in none of the approver groups of rule {approval.rule!r}",
            code=Code.NOT_AN_APPROVER,
        )
    said = text.reason(reason, required=True, what="a revocation")
    return _resolve(
        replace(approval, version=approval.version + 1), "revoked", said, actor.subject, now
    )


def expire(approval: Approval, now: float) -> Approval | None:
    """The approval once its clock ran out, or None while it has not."""
    if not approval.due(now):
        return None
    if approval.pending:
        ended, why = approval.expires_at, "nobody decided within the pending time"
    else:
        ended, why = approval.grant_expires_at or now, "the grant ran out"
    next_version = replace(approval, version=approval.version + 1)
    return _resolve(next_version, "expired", why, "", ended)


def held_outcome(approval: Approval, now: float) -> Code | None:
    """What a request held for ``approval`` gets: None (it goes on: the grant is active),
    ``approval_denied`` (an approver said no), or ``approval_required`` (still pending, expired
    or revoked: the caller may ask again)."""
    if approval.grant_active(now):
        return None
    if approval.status == "denied":
        return Code.APPROVAL_DENIED
    return Code.APPROVAL_REQUIRED


def thresholds_met(policy: ApprovalPolicy, reviews: Sequence[Review]) -> bool:
    """Whether the approving reviews fill the policy's seats, one seat per person."""
    approvers = [set(r.reviewer.groups) for r in reviews if r.verdict == "approve"]
    if policy.any_of:
        return len(approvers) >= policy.any_of
    seats = [group for group, count in policy.thresholds for _ in range(count)]
    if len(approvers) < len(seats):
        return False
    holder: dict[int, int] = {}  # approver index -> seat index (bipartite matching)

    def seat(index: int, tried: set[int]) -> bool:
        for who, groups in enumerate(approvers):
            if seats[index] in groups and who not in tried:
                tried.add(who)
                if who not in holder or seat(holder[who], tried):
                    holder[who] = index
                    return True
        return False

    return all(seat(index, set()) for index in range(len(seats)))


def grant_ttl(policy: ApprovalPolicy, reviews: Sequence[Review]) -> float:
    asked = [
        policy.grant_ttl_seconds if r.ttl_seconds is None else r.ttl_seconds
        for r in reviews
        if r.verdict == "approve"
    ]
    return min(asked, default=policy.grant_ttl_seconds)


def _check_ttl(policy: ApprovalPolicy, ttl_seconds: float | None) -> None:
    if ttl_seconds is None:
        return
    if not 0 < ttl_seconds <= policy.max_grant_ttl_seconds:
        raise ApprovalError(
            f"the grant TTL must be more than 0 and at most "
            f"{policy.max_grant_ttl_seconds:g}s for this rule",
            code=Code.GRANT_TTL_INVALID,
        )


def _check_pending(approval: Approval, now: float) -> None:
    if approval.pending and now >= approval.expires_at:
        raise ApprovalError("the request expired before it was decided", code=Code.APPROVAL_EXPIRED)
    if not approval.pending:
        raise ApprovalError(
            f"the request is already {_status_now(approval, now)}",
            code=Code.APPROVAL_NOT_PENDING,
        )


def _status_now(approval: Approval, now: float) -> str:
    return "expired" if approval.due(now) else approval.status


def _resolve(approval: Approval, status: Status, why: str, by: str, at: float) -> Approval:
    return replace(
        approval,
        status=status,
        resolved_at=at,
        resolve_reason=why,
        resolved_by=by,
    )
