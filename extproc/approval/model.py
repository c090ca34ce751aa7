"""An approval request and its reviews, as immutable values.

Lifecycle: ``pending`` → ``approved`` (the thresholds are met: a grant runs until
``grant_expires_at``) or ``denied`` (any deny, at once) or ``expired`` (nobody decided within the
pending TTL). An approved request later becomes ``expired`` (its grant ran out) or ``revoked``
(an approver or the requester ended it early); a pending one may be ``revoked`` (withdrawn).
Reviews are accepted only while ``pending``; after that only the grant's own end changes it.

``version`` counts the changes of one approval; the store compares it so that two processes
acting on the same approval at once cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from extproc.approval.policy import ApprovalPolicy

Status = Literal["pending", "approved", "denied", "expired", "revoked"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "denied", "expired", "revoked")
Verdict = Literal["approve", "deny"]
VERDICTS: tuple[Verdict, ...] = ("approve", "deny")
# What happened to an approval: the store's change feed, the audit trail and the webhooks all
# speak these. ``used`` is recorded by the data path (a grant let a request through) and never
# changes the store.
EventKind = Literal["requested", "reviewed", "granted", "denied", "expired", "revoked", "used"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "requested",
    "reviewed",
    "granted",
    "denied",
    "expired",
    "revoked",
    "used",
)


@dataclass(frozen=True, slots=True)
class Person:
    """A verified identity, as much of it as approvals need: the requester or a reviewer.
    ``issuer`` is the configured issuer name, ``groups`` as the token had them."""

    subject: str
    issuer: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """The request an approval is bound to. ``digest`` covers method, path, model and the
    canonical body (``extproc.approval.ids.request_digest``); ``scope_key`` is what a grant
    matches on (the digest for ``request`` scope, route and model for ``route`` scope)."""

    method: str
    path: str
    route: str
    model: str
    target_region: str
    digest: str
    scope_key: str


@dataclass(frozen=True, slots=True)
class Review:
    reviewer: Person
    verdict: Verdict
    reason: str
    at: float
    ttl_seconds: float | None = None  # an approver's own grant TTL (None: the rule's)


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    status: Status
    rule: str
    rule_reason: str
    requester: Person
    target: Target
    policy: ApprovalPolicy
    justification: str
    created_at: float
    expires_at: float  # the end of the pending TTL
    reviews: tuple[Review, ...] = ()
    resolved_at: float | None = None
    resolve_reason: str = ""
    resolved_by: str = ""  # the subject whose review or revocation resolved it; "" for expiry
    grant_expires_at: float | None = None
    decision_id: str = ""  # the authz decision that asked for it
    request_id: str = ""
    version: int = 1

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def grant_active(self, now: float) -> bool:
        """True while this approval lets its scope through: approved and not yet ended."""
        return (
            self.status == "approved"
            and self.grant_expires_at is not None
            and now < self.grant_expires_at
        )

    def due(self, now: float) -> bool:
        """True when a clock has run out and ``expire`` would change it."""
        if self.status == "pending":
            return now >= self.expires_at
        return self.status == "approved" and not self.grant_active(now)
