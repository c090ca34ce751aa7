"""How ``extproc approvals`` shows approvals: one line each in lists and watches, a block for
``show``, and JSON (the API's own field names) with ``--json``.

Everything a person typed (justifications, reasons) is cleaned again before it reaches the
terminal, so no stored text can move the cursor or recolour a line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from extproc.approval.text import clean_text
from extproc.approvals.api import approvals_pb2 as pb


def as_json(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def approval_line(approval: pb.Approval) -> str:
    """``<id>  <status>  <requester>  <rule>  <method> <path>  <model>  <created>``"""
    return "  ".join(
        [
            approval.id,
            f"{approval.status:<8}",
            _safe(approval.requester.subject),
            _safe(approval.rule),
            f"{approval.method} {_safe(approval.path)}",
            _safe(approval.model) or "-",
            _when(approval, "created_at"),
        ]
    )


def change_line(change: pb.Change) -> str:
    approval = change.approval
    who = ""
    if change.kind == "reviewed" and approval.reviews:
        last = approval.reviews[-1]
        who = f" by {_safe(last.reviewer.subject)} ({last.verdict})"
    elif approval.resolved_by and change.kind in ("granted", "denied", "revoked"):
        who = f" by {_safe(approval.resolved_by)}"
    return (
        f"{_when(change, 'at')}  #{change.version}  {change.kind:<9} {approval.id}  "
        f"{_safe(approval.requester.subject)}  {_safe(approval.rule)}{who}"
    )


def outcome_line(approval: pb.Approval) -> str:
    """What a review or revocation left: ``<id>: approved until ...``, ``<id>: pending ...``."""
    if approval.status == "approved":
        return (
            f"{approval.id}: approved; the grant lasts until {_when(approval, 'grant_expires_at')}"
        )
    if approval.status == "pending":
        return f"{approval.id}: pending; {_still_needed(approval)}"
    return f"{approval.id}: {approval.status}: {_safe(approval.resolve_reason)}"


def approval_details(approval: pb.Approval) -> str:
    policy = approval.policy
    rows = [
        ("id", approval.id),
        ("status", approval.status),
        ("requester", f"{_safe(approval.requester.subject)} ({_safe(approval.requester.issuer)})"),
        ("groups", ", ".join(map(_safe, approval.requester.groups)) or "-"),
        ("rule", f"{_safe(approval.rule)}: {_safe(approval.rule_reason)}"),
        ("request", f"{approval.method} {_safe(approval.path)}"),
        ("route", _safe(approval.route) or "-"),
        ("model", _safe(approval.model) or "-"),
        ("target region", _safe(approval.target_region) or "-"),
        ("request digest", approval.request_digest),
        ("justification", _safe(approval.justification) or "-"),
        ("approvers", _requirement(policy)),
        ("created", _when(approval, "created_at")),
        ("expires", _when(approval, "expires_at")),
    ]
    if approval.HasField("resolved_at"):
        rows.append(("resolved", f"{_when(approval, 'resolved_at')} {_by(approval)}".rstrip()))
        rows.append(("resolve reason", _safe(approval.resolve_reason) or "-"))
    if approval.HasField("grant_expires_at"):
        rows.append(("grant until", _when(approval, "grant_expires_at")))
    width = max(len(name) for name, _value in rows)
    lines = [f"{name + ':':<{width + 1}} {value}" for name, value in rows]
    if approval.reviews:
        lines.append("reviews:")
    for review in approval.reviews:
        ttl = f", ttl {review.ttl_seconds:g}s" if review.ttl_seconds else ""
        reason = f": {_safe(review.reason)}" if review.reason else ""
        lines.append(
            f"  {_when(review, 'at')} {review.verdict} by {_safe(review.reviewer.subject)}"
            f" [{', '.join(review.reviewer.groups)}]{ttl}{reason}"
        )
    return "\n".join(lines)


def _requirement(policy: pb.Policy) -> str:
    if policy.any_of:
        groups = ", ".join(policy.approver_groups)
        return f"{policy.any_of} of {groups}"
    return ", ".join(f"{count} of {group}" for group, count in sorted(policy.thresholds.items()))


def _still_needed(approval: pb.Approval) -> str:
    done = len(approval.reviews)
    return f"{done} approval(s) so far; the rule needs {_requirement(approval.policy)}"


def _by(approval: pb.Approval) -> str:
    return f"by {_safe(approval.resolved_by)}" if approval.resolved_by else ""


def _when(message: Any, field: str) -> str:
    if not message.HasField(field):
        return "-"
    stamp: Timestamp = getattr(message, field)
    moment = datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe(text: str) -> str:
    return clean_text(text)
