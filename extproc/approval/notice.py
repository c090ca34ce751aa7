"""What a webhook receives when an approval is requested or decided, and how it is signed.

Two formats: ``json`` (the event, its change version and the approval as the CLI's ``--json``
shows it, without the grant's scope key) and ``slack`` (``{"text": ..., "blocks": [...]}``,
which Slack's incoming webhooks accept as is). The justification is included: approvers need
the requester's words to decide, and the webhook is how they reach them.

Signature: ``x-extproc-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``. A
receiver recomputes it with the shared key, compares in constant time and refuses a ``t`` far
from its clock (a replayed delivery); ``verify_signature`` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

import orjson

from extproc.approval.codec import approval_to_dict
from extproc.approval.model import Approval, EventKind

NoticeFormat = Literal["json", "slack"]
NOTICE_FORMATS: tuple[NoticeFormat, ...] = ("json", "slack")
SIGNATURE_HEADER = "x-extproc-signature"
DEFAULT_TOLERANCE_SECONDS = 300.0
_HEADLINE: dict[EventKind, str] = {
    "requested": "Approval requested",
    "reviewed": "Approval reviewed",
    "granted": "Approval granted",
    "denied": "Approval denied",
    "expired": "Approval expired",
    "revoked": "Approval revoked",
    "used": "Approval used",
}


def notice_body(
    kind: EventKind, approval: Approval, *, version: int, time: str, fmt: NoticeFormat
) -> bytes:
    if fmt == "slack":
        return orjson.dumps(_slack(kind, approval))
    shown = approval_to_dict(approval)
    del shown["target"]["scope_key"]  # what a grant matches on is nobody else's business
    return orjson.dumps({"event": kind, "version": version, "time": time, "approval": shown})


def sign(body: bytes, key: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(key, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    header: str,
    body: bytes,
    key: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``header`` signs ``body`` with ``key`` and its time is within ``tolerance``."""
    parts = dict(item.partition("=")[::2] for item in header.split(",") if "=" in item)
    timestamp = parts.get("t", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(body, key, int(timestamp)).partition(",v1=")[2]
    return hmac.compare_digest(expected.encode("ascii"), parts.get("v1", "").encode("ascii"))


def _slack(kind: EventKind, approval: Approval) -> dict[str, Any]:
    target = approval.target
    who = approval.requester.subject
    headline = f"{_HEADLINE[kind]}: {who} → {target.model or target.route or target.path}"
    lines = [
        f"*{_escape(_HEADLINE[kind])}* `{approval.id}`",
        f"*Requester:* {_escape(who)} ({_escape(approval.requester.issuer)})",
        f"*Rule:* {_escape(approval.rule)}: {_escape(approval.rule_reason)}",
        f"*Request:* {_escape(target.method)} {_escape(target.path)}"
        + (f" model {_escape(target.model)}" if target.model else "")
        + (f" region {_escape(target.target_region)}" if target.target_region else ""),
    ]
    if approval.justification:
        lines.append(f"*Justification:* {_escape(approval.justification)}")
    if approval.resolve_reason and kind != "requested":
        by = f" by {_escape(approval.resolved_by)}" if approval.resolved_by else ""
        lines.append(f"*Status:* {approval.status}{by}: {_escape(approval.resolve_reason)}")
    context = f"Review with `extproc approvals show {approval.id}`"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def _escape(text: str) -> str:
    """Slack's three control characters, so nobody's words can mention a channel or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
