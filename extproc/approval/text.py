"""Words people type into approvals: the requester's justification and reviewers' reasons.

They end up on an approver's terminal, in Slack and in the audit trail, so control characters
are removed (line breaks become spaces) along with the bidirectional overrides that can make a
line read differently from what it holds. A justification longer than its rule allows is
refused (the requester can shorten it); a reason is cut at ``MAX_REASON_BYTES`` on a character
boundary (it was already given, by someone allowed to give it).
"""

from __future__ import annotations

import hashlib
import unicodedata

from extproc.approval.policy import ApprovalPolicy
from extproc.errors import ApprovalError, Code

MAX_REASON_BYTES = 4096
_AS_SPACE = frozenset("\t\n\r\v\f\u2028\u2029\x85")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str) -> str:
    """``text`` without control characters (line breaks as spaces), trimmed."""
    if text.isprintable():  # the common case: nothing to remove
        return text.strip()
    kept = []
    for char in text:
        if char in _AS_SPACE:
            kept.append(" ")
        elif char in _BIDI or unicodedata.category(char) in ("Cc", "Cs"):
            continue
        else:
            kept.append(char)
    return "".join(kept).strip()


def cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def justification(text: str | None, policy: ApprovalPolicy) -> str:
    """The requester's justification as stored: cleaned, within the rule's limit.

    Raises ``ApprovalError`` (``justification_required``, ``justification_too_long``)."""
    cleaned = clean_text(text or "")
    if not cleaned and policy.justification_required:
        raise ApprovalError(
            "this request needs a justification for its approvers",
            code=Code.JUSTIFICATION_REQUIRED,
        )
    size = len(cleaned.encode("utf-8"))
    if size > policy.justification_max_bytes:
        raise ApprovalError(
            f"the justification has {size} bytes; this rule allows "
            f"{policy.justification_max_bytes}",
            code=Code.JUSTIFICATION_TOO_LONG,
        )
    return cleaned


def reason(text: str | None, *, required: bool, what: str) -> str:
    """A reviewer's reason as stored: cleaned and cut. Raises ``reason_required`` when it is
    needed and empty (``what`` names the act: "a denial", "a revocation", ...)."""
    cleaned = cut_utf8(clean_text(text or ""), MAX_REASON_BYTES)
    if required and not cleaned:
        raise ApprovalError(f"{what} needs a reason", code=Code.REASON_REQUIRED)
    return cleaned


def text_digest(text: str) -> str:
    """What the audit trail keeps of someone's own words: a SHA-256, never the words."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
