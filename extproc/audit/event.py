"""The audit event: what one decided request leaves in the trail, built in one place.

``build_event`` makes the event of both services from the one decision contract
(``extproc.decision``): authz records the requests it stops, the processor every exchange it
sees. ``effect`` is what the policy said (allow, deny, require_approval), ``outcome`` what
happened (allowed, denied, held, dry_run). The event is a plain ``dict`` (the cheapest thing to
build on the request path and to serialise); ``AuditEvent`` is its schema for readers and mypy,
and ``EVENT_FIELDS`` is what the writer accepts. An event with any other field is refused at
``submit``.

Invariant: no field holds body content. Callers pass ids, names, addresses, sizes and counts
only (findings are counted per ``"<direction>.<type>"``, never quoted). The one exception is
``capture``: already-masked text, off by default, and cut to ``capture_max_bytes`` by the writer.
Session recordings live in their own files; the event holds only their digest (``recording``).
The writer also records ``path`` without its query string, where tokens and personal values
tend to travel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from extproc.decision import Decision, Effect, Outcome, bounded_model
from extproc.errors import Code


class DryRunHit(TypedDict):
    """A rule that matched in dry-run mode: what it would have done."""

    rule: str
    effect: str
    reason: str


class AuditEvent(TypedDict, total=False):
    """One decided request. Every field is optional; unknown fields are refused.

    The chain adds ``chain`` (``<service>-<worker>``, so the worker is always known), ``seq``,
    ``prev``, ``hash`` and ``mac``; those names are reserved.
    """

    time: str  # RFC 3339, UTC, microseconds: 2026-11-23T10:00:00.123456Z (see utc_timestamp)
    service: str  # authz | processor
    worker: int
    request_id: str
    decision_id: str
    effect: Effect  # what the policy said
    outcome: Outcome  # what happened to the request
    enforced: bool  # false when the whole policy ran in dry-run mode
    rule: str  # the rule that decided, or the gateway's own rule (identity, masking, audit, ...)
    reason: str  # the human reason of that rule
    error: str  # the stable code (extproc.errors.Code) when the gateway answered itself
    status: int  # the HTTP status the caller got, when the gateway answered itself
    subject: str
    issuer: str
    groups: list[str]
    source_address: str
    source_country: str
    source_region: str
    declared_region: str
    target_region: str
    route: str
    host: str
    method: str
    path: str  # recorded without its query string
    model: str
    upstream_status: int
    request_bytes: int
    response_bytes: int
    findings: dict[str, int]  # "request.email" -> 2: counts only, never the values
    masking_profile: str
    masking_mode: str
    duration_ms: float
    approval_id: str
    approval_event: str  # requested | reviewed | granted | denied | expired | revoked | used
    approval_status: str  # pending | approved | denied | expired | revoked
    approval_reason: str  # why it resolved: the deciding reviewer's reason, or the clock's
    reviewer: str  # the subject who reviewed, resolved or revoked
    reviewer_issuer: str
    review: str  # approve | deny
    request_digest: str  # SHA-256 of method, path, model and canonical body: never the body
    grant_expires_at: str  # RFC 3339, UTC
    justification_bytes: int  # the requester's own words stay in the approvals store;
    justification_digest: str  # the trail keeps their size and SHA-256 only
    dry_run: list[DryRunHit]
    policy_revision: str
    capture: dict[str, str]  # direction -> already-masked text, only when capture is on
    # The exchange's session recording (``extproc.audit.recording``): its file relative to the
    # audit directory, SHA-256, size and whether it was cut at max_bytes; or ``error`` when it
    # could not be written. Never its content.
    recording: dict[str, Any]


EVENT_FIELDS: frozenset[str] = AuditEvent.__optional_keys__ | AuditEvent.__required_keys__
# Names the chain itself writes; no event field may take one (an event cannot forge chain data).
RECORD_FIELDS = frozenset({"chain", "seq", "prev", "hash", "mac", "genesis", "recovery", "kind"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """The gateway answered the request itself (a deny from authz, a refusal by the processor)."""

    error: Code
    reason: str
    rule: str
    status: int
    approval_id: str = ""  # the approval the caller may ask about (approval_required/denied)


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the processor saw of an exchange: sizes, findings counted by type, timing."""

    upstream_status: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    findings: Mapping[str, int] = field(default_factory=dict)
    masking_profile: str = ""
    masking_mode: str = ""
    duration_ms: float = 0.0
    capture: Mapping[str, str] | None = None


def build_event(
    *,
    service: str,
    time: str,
    decision: Decision | None,
    method: str,
    path: str,
    refusal: Refusal | None = None,
    traffic: Traffic | None = None,
) -> dict[str, Any]:
    """The one audit event of a request, for both services.

    ``decision`` is None only when none reached the processor (then ``refusal`` says why). A
    ``refusal`` overrides the decision's outcome: the request was denied, by that rule.
    """
    event: dict[str, Any] = {"time": time, "service": service, "method": method, "path": path}
    if decision is not None:
        event.update(
            request_id=decision.request_id,
            decision_id=decision.decision_id,
            effect=decision.effect,
            outcome=decision.outcome,
            enforced=decision.enforced,
            rule=decision.rule,
            reason=decision.reason,
            subject=decision.subject,
            issuer=decision.issuer,
            groups=list(decision.groups),
            source_address=decision.source_address,
            source_country=decision.source_country,
            source_region=decision.source_region,
            declared_region=decision.declared_region,
            target_region=decision.target_region,
            model=bounded_model(decision.model),  # authz bounds it; a record never more
            policy_revision=decision.policy_revision,
        )
        if decision.error is not None:
            event.update(error=str(decision.error), status=decision.status)
        if decision.dry_run:
            event["dry_run"] = [
                {"rule": hit.rule, "effect": hit.effect, "reason": hit.reason}
                for hit in decision.dry_run
            ]
    if refusal is not None:
        event.update(
            outcome="held" if refusal.error == Code.APPROVAL_REQUIRED else "denied",
            rule=refusal.rule,
            reason=refusal.reason,
            error=str(refusal.error),
            status=refusal.status,
        )
        if refusal.approval_id:
            event["approval_id"] = refusal.approval_id
    if traffic is not None:
        event.update(
            upstream_status=traffic.upstream_status,
            request_bytes=traffic.request_bytes,
            response_bytes=traffic.response_bytes,
            findings=dict(traffic.findings),
            masking_profile=traffic.masking_profile,
            masking_mode=traffic.masking_mode,
            duration_ms=traffic.duration_ms,
        )
        if traffic.capture:
            event["capture"] = dict(traffic.capture)
    return event


def utc_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: sortable as text."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unknown_fields(event: Mapping[str, Any]) -> list[str]:
    return sorted(str(name) for name in event if name not in EVENT_FIELDS)


def as_written(event: Mapping[str, Any], capture_max_bytes: int) -> Mapping[str, Any]:
    """The event as the trail records it (runs on the writer thread, not the request path).

    The path loses its query string; ``capture`` is removed when capture is off
    (``capture_max_bytes`` 0) and each text is cut to ``capture_max_bytes`` UTF-8 bytes. The
    caller's mapping is never changed; it is returned as is when nothing needs to change.
    """
    path = event.get("path")
    strip_query = isinstance(path, str) and "?" in path
    capture = event.get("capture")
    if not strip_query and capture is None:
        return event
    written = dict(event)
    if strip_query:
        written["path"] = str(path).split("?", 1)[0]
    if capture is not None:
        if capture_max_bytes <= 0 or not isinstance(capture, Mapping):
            del written["capture"]
        else:
            written["capture"] = {
                str(direction): _cut(text, capture_max_bytes)
                for direction, text in capture.items()
                if isinstance(text, str)
            }
    return written


def _cut(text: str, max_bytes: int) -> str:
    if len(text) * 4 <= max_bytes:  # cannot be longer than the cap even if all 4-byte chars
        return text
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    # Cutting inside a multi-byte character would leave an invalid tail; drop it.
    return data[:max_bytes].decode("utf-8", "ignore")
