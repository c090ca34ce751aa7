"""An approval as plain JSON values and back: the one shape the store keeps, the CLI prints
with ``--json`` and webhooks carry.

``approval_from_dict`` is strict: a document it cannot read completely raises ``ValueError``
(the store then reports it as unusable rather than guess). The policy comes back through its
own constructor, so a stored policy is checked like a configured one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from extproc.approval.model import STATUSES, VERDICTS, Approval, Person, Review, Target
from extproc.approval.policy import ApprovalPolicy

FORMAT = 1  # bump when the shape changes; readers refuse a format they do not know


def approval_to_dict(approval: Approval) -> dict[str, Any]:
    policy = approval.policy
    return {
        "format": FORMAT,
        "id": approval.id,
        "status": approval.status,
        "version": approval.version,
        "rule": approval.rule,
        "rule_reason": approval.rule_reason,
        "requester": _person(approval.requester),
        "target": {
            "method": approval.target.method,
            "path": approval.target.path,
            "route": approval.target.route,
            "model": approval.target.model,
            "target_region": approval.target.target_region,
            "digest": approval.target.digest,
            "scope_key": approval.target.scope_key,
        },
        "policy": {
            "approver_groups": list(policy.approver_groups),
            "thresholds": dict(policy.thresholds),
            "any_of": policy.any_of,
            "scope": policy.scope,
            "grant_ttl_seconds": policy.grant_ttl_seconds,
            "max_grant_ttl_seconds": policy.max_grant_ttl_seconds,
            "pending_ttl_seconds": policy.pending_ttl_seconds,
            "hold_seconds": policy.hold_seconds,
            "justification_required": policy.justification_required,
            "justification_max_bytes": policy.justification_max_bytes,
            "approve_reason_required": policy.approve_reason_required,
        },
        "justification": approval.justification,
        "reviews": [
            {
                "reviewer": _person(r.reviewer),
                "verdict": r.verdict,
                "reason": r.reason,
                "at": r.at,
                "ttl_seconds": r.ttl_seconds,
            }
            for r in approval.reviews
        ],
        "created_at": approval.created_at,
        "expires_at": approval.expires_at,
        "resolved_at": approval.resolved_at,
        "resolve_reason": approval.resolve_reason,
        "resolved_by": approval.resolved_by,
        "grant_expires_at": approval.grant_expires_at,
        "decision_id": approval.decision_id,
        "request_id": approval.request_id,
    }


def approval_from_dict(data: Mapping[str, Any]) -> Approval:
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown approval format {data.get('format')!r}")
    try:
        policy = data["policy"]
        target = data["target"]
        return Approval(
            id=_text(data["id"]),
            status=_choice(data["status"], STATUSES),
            rule=_text(data["rule"]),
            rule_reason=_text(data["rule_reason"]),
            requester=_person_from(data["requester"]),
            target=Target(**{f.name: _text(target[f.name]) for f in fields(Target)}),
            policy=ApprovalPolicy(
                approver_groups=tuple(map(_text, policy["approver_groups"])),
                thresholds=tuple(
                    sorted((_text(g), int(n)) for g, n in policy["thresholds"].items())
                ),
                any_of=int(policy["any_of"]),
                scope=_choice(policy["scope"], ("request", "route")),
                grant_ttl_seconds=float(policy["grant_ttl_seconds"]),
                max_grant_ttl_seconds=float(policy["max_grant_ttl_seconds"]),
                pending_ttl_seconds=float(policy["pending_ttl_seconds"]),
                hold_seconds=float(policy["hold_seconds"]),
                justification_required=bool(policy["justification_required"]),
                justification_max_bytes=int(policy["justification_max_bytes"]),
                approve_reason_required=bool(policy["approve_reason_required"]),
            ),
            justification=_text(data["justification"]),
            reviews=tuple(_review_from(item) for item in data["reviews"]),
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            resolved_at=_seconds(data["resolved_at"]),
            resolve_reason=_text(data["resolve_reason"]),
            resolved_by=_text(data["resolved_by"]),
            grant_expires_at=_seconds(data["grant_expires_at"]),
            decision_id=_text(data["decision_id"]),
            request_id=_text(data["request_id"]),
            version=int(data["version"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed approval document: {type(exc).__name__} {exc}") from None


def _person(person: Person) -> dict[str, Any]:
    return {"subject": person.subject, "issuer": person.issuer, "groups": list(person.groups)}


def _person_from(data: Mapping[str, Any]) -> Person:
    return Person(_text(data["subject"]), _text(data["issuer"]), tuple(map(_text, data["groups"])))


def _review_from(data: Mapping[str, Any]) -> Review:
    return Review(
        reviewer=_person_from(data["reviewer"]),
        verdict=_choice(data["verdict"], VERDICTS),
        reason=_text(data["reason"]),
        at=float(data["at"]),
        ttl_seconds=_seconds(data["ttl_seconds"]),
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _choice(value: Any, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value
