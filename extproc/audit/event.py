"""The audit event: what one decided request leaves in the trail.

Callers build a plain ``dict`` (the cheapest thing to build on the request path and to
serialise); ``AuditEvent`` is its schema for readers and mypy, and ``EVENT_FIELDS`` is what the
writer accepts. An event with any other field is refused at ``submit``.

Invariant: no field holds body content. Callers pass ids, names, addresses, sizes and counts
only (findings are counted per ``"<direction>.<type>"``, never quoted). The one exception is
``capture``: already-masked text, off by default, and cut to ``capture_max_bytes`` by the writer.
The writer also records ``path`` without its query string, where tokens and personal values
tend to travel.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

Decision = Literal["allow", "deny", "hold", "dry_run"]


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
    decision: Decision
    rule: str
    reason: str  # a stable error code from extproc.errors, or the rule's reason code
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
    dry_run: list[DryRunHit]
    policy_revision: str
    capture: dict[str, str]  # direction -> already-masked text, only when capture is on


EVENT_FIELDS: frozenset[str] = AuditEvent.__optional_keys__ | AuditEvent.__required_keys__
# Names the chain itself writes; no event field may take one (an event cannot forge chain data).
RECORD_FIELDS = frozenset({"chain", "seq", "prev", "hash", "mac", "genesis", "recovery", "kind"})


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
