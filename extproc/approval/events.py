"""The audit events of an approval's life, built in one place: ``approval_event``.

``requested`` (the request is held), ``reviewed`` (one review, approve or deny), ``granted`` or
``denied`` (the review that resolved it), ``expired`` (a clock ran out), ``revoked``, and
``used`` (a grant let a request through; built by the data path with that request's decision).
Each event carries the fields the audit writer accepts (``extproc.audit.event.AuditEvent``):
the requester, the rule, the target and the approval's id and status. Never a body (the request
is known by its digest) and never the justification (the requester's own words stay in the
approvals store; the trail keeps their size and SHA-256).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from extproc.approval.model import Approval, EventKind
from extproc.approval.text import text_digest
from extproc.decision import Decision

_OUTCOME: dict[EventKind, str] = {"requested": "held", "denied": "denied", "used": "allowed"}


def approval_event(
    kind: EventKind,
    approval: Approval,
    *,
    time: str,
    service: str,
    decision: Decision | None = None,
) -> dict[str, Any]:
    """The audit event of ``kind`` for ``approval`` as it is after that event.

    For ``reviewed`` the review is the approval's last one; for ``used``, ``decision`` is the
    decision of the request the grant let through (its request and decision ids are recorded).
    """
    target = approval.target
    event: dict[str, Any] = {
        "time": time,
        "service": service,
        "effect": "require_approval",
        "rule": approval.rule,
        "reason": approval.rule_reason,
        "subject": approval.requester.subject,
        "issuer": approval.requester.issuer,
        "groups": list(approval.requester.groups),
        "method": target.method,
        "path": target.path,
        "route": target.route,
        "model": target.model,
        "target_region": target.target_region,
        "request_id": approval.request_id,
        "decision_id": approval.decision_id,
        "approval_id": approval.id,
        "approval_event": kind,
        "approval_status": approval.status,
        "request_digest": target.digest,
    }
    if kind in _OUTCOME:
        event["outcome"] = _OUTCOME[kind]
    if kind == "requested":
        event["justification_bytes"] = len(approval.justification.encode("utf-8"))
        event["justification_digest"] = text_digest(approval.justification)
    elif kind == "reviewed" and approval.reviews:
        last = approval.reviews[-1]
        event.update(
            reviewer=last.reviewer.subject,
            reviewer_issuer=last.reviewer.issuer,
            review=last.verdict,
        )
        if last.reason:
            event["approval_reason"] = last.reason
    elif kind in ("granted", "denied", "expired", "revoked"):
        event["approval_reason"] = approval.resolve_reason
        if approval.resolved_by:
            event["reviewer"] = approval.resolved_by
    if kind == "used" and decision is not None:
        event.update(
            request_id=decision.request_id,
            decision_id=decision.decision_id,
            source_address=decision.source_address,
            policy_revision=decision.policy_revision,
        )
    if approval.grant_expires_at is not None and kind in ("granted", "used"):
        event["grant_expires_at"] = rfc3339(approval.grant_expires_at)
    return event


def rfc3339(seconds: float) -> str:
    """Epoch seconds as the trail writes times: UTC, microseconds, ``Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
