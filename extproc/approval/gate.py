"""The approval step of a request a rule marks ``require_approval``, for the data path.

``admit`` is what authz calls (from a worker thread: it reads and may write the store) once the
policy said ``require_approval``: if the subject holds an active grant for this request's scope
the request goes on (``Admission.grant``; record ``used``); otherwise the approval waiting for
this scope is joined, or a new one opened (``Admission.pending``), and the request is held or
refused with ``approval_required`` and the approval's id. The processor then waits for that
approval with ``ApprovalWaiter.wait_resolved(id, policy.hold_seconds)`` and answers as
``extproc.approval.rules.held_outcome`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from extproc.approval.ids import new_approval_id, request_target
from extproc.approval.model import Approval
from extproc.approval.policy import ApprovalPolicy
from extproc.approval.rules import open_approval
from extproc.approval.store import ApprovalStore
from extproc.decision import Decision


@dataclass(frozen=True, slots=True)
class Admission:
    grant: Approval | None = None  # an active grant lets the request through
    pending: Approval | None = None  # else: the approval the request waits for
    created: bool = False  # the pending approval is new (its ``requested`` event is due)


def admit(
    store: ApprovalStore,
    decision: Decision,
    policy: ApprovalPolicy,
    *,
    method: str,
    path: str,
    route: str,
    body: bytes | None,
    justification: str | None,
    now: float,
    new_id: Callable[[], str] = new_approval_id,
) -> Admission:
    """Raises ``ApprovalError``: ``justification_required`` / ``justification_too_long`` (the
    caller's to fix), ``missing_token`` (no subject), ``approvals_unavailable`` (fail closed)."""
    target = request_target(
        policy,
        rule=decision.rule,
        issuer=decision.issuer,
        method=method,
        path=path,
        route=route,
        model=decision.model,
        target_region=decision.target_region,
        body=body,
    )
    grant = store.find_grant(decision.subject, target.scope_key, now)
    if grant is not None:
        return Admission(grant=grant)
    approval = open_approval(
        decision, policy, approval_id=new_id(), target=target, justification=justification, now=now
    )
    opened = store.create(approval)
    return Admission(pending=opened.approval, created=opened.created)
