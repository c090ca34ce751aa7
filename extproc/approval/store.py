"""The approval store's interface, ``ApprovalStore``, and the values it hands back.

Every process that opens an approval (authz), waits for one (the processor holding a request),
checks a grant (authz) or reviews one (the approvals API) talks to the same store. Its contract:

- Transitions are the pure rules of ``extproc.approval.rules`` applied inside a transaction
  with a compare-and-swap on ``Approval.version``: of two reviews of the same approval in two
  processes at once, exactly one sees the state it acted on; the other is re-read and judged
  again (a second approval of an already approved request is refused as ``approval_not_pending``).
- Every transition appends to a change feed (``Change``: a global ``version``, what happened,
  the approval as it was right after). ``changes(since)`` reads it; ``wait_for_change`` and the
  Watch API are built on it, so a decision taken in any process reaches a waiter in any other.
- ``create`` never opens a second pending approval for the same subject, rule and scope: a
  client retrying a held request joins the approval already waiting.
- Times are passed in (``now``), never read by the store for decisions.

The SQLite backend (``extproc.approvals.sqlite``) polls for changes; a PostgreSQL backend can
wake waiters with LISTEN/NOTIFY instead behind the same methods, without changing a caller.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol

from extproc.approval.model import Approval, EventKind, Person, Status, Verdict


@dataclass(frozen=True, slots=True)
class Opened:
    """The approval ``create`` left pending, and whether it is new (else: the one already
    waiting for the same subject, rule and scope)."""

    approval: Approval
    created: bool


@dataclass(frozen=True, slots=True)
class Change:
    version: int  # strictly increasing across the whole store
    kind: EventKind
    approval: Approval  # as it was right after this change
    at: float


class ApprovalStore(Protocol):
    def create(self, approval: Approval) -> Opened:
        """Store a pending approval (``requested``), or return the one already pending."""
        ...

    def get(self, approval_id: str) -> Approval:
        """Raises ``ApprovalError`` ``approval_id_malformed`` or ``approval_not_found``."""
        ...

    def review(
        self,
        approval_id: str,
        reviewer: Person,
        verdict: Verdict,
        *,
        reason: str | None,
        ttl_seconds: float | None,
        now: float,
    ) -> Approval:
        """Apply one review (``extproc.approval.rules.review``) atomically."""
        ...

    def revoke(
        self, approval_id: str, actor: Person, *, reason: str | None, now: float
    ) -> Approval: ...

    def list(
        self, *, status: Status | None = None, since: float | None = None, limit: int = 100
    ) -> builtins.list[Approval]:
        """Newest first; ``since`` keeps approvals created at or after it."""
        ...

    def find_grant(self, subject: str, scope_key: str, now: float) -> Approval | None:
        """The approved, unexpired, unrevoked approval that lets this subject's request with
        this scope key through (the one that lasts longest), or None."""
        ...

    def expire(self, now: float) -> builtins.list[Approval]:
        """Mark every approval whose clock ran out ``expired``; returns them."""
        ...

    def version(self) -> int:
        """The version of the latest change (0 for an empty store)."""
        ...

    def changes(self, since_version: int, limit: int = 100) -> builtins.list[Change]:
        """Changes with a version greater than ``since_version``, oldest first."""
        ...

    def wait_for_change(self, approval_id: str, after_version: int, timeout: float) -> Approval:
        """Block until the approval's own ``version`` exceeds ``after_version`` or ``timeout``
        seconds pass; returns it as it is then (a thread's API: async callers use a waiter)."""
        ...

    def cursor(self, consumer: str) -> int | None:
        """How far ``consumer`` (a feed reader, e.g. the notifier) has read, if it ever did."""
        ...

    def save_cursor(self, consumer: str, version: int) -> None: ...

    def close(self) -> None: ...
