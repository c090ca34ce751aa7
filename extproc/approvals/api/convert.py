"""Approvals as API messages, and refusals as gRPC status codes.

A refusal keeps its stable code: the status details start with it (``"self_approval: you
cannot review your own request"``) and the trailing metadata ``x-extproc-error`` holds it alone,
for clients that branch on it.
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from extproc.approval.model import Approval, Person, Review
from extproc.approval.store import Change
from extproc.approvals.api import approvals_pb2 as pb
from extproc.errors import Code, status_of

ERROR_METADATA = "x-extproc-error"
_STATUS: dict[Code, grpc.StatusCode] = {
    Code.APPROVAL_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.NOT_AN_APPROVER: grpc.StatusCode.PERMISSION_DENIED,
    Code.SELF_APPROVAL: grpc.StatusCode.PERMISSION_DENIED,
    Code.APPROVAL_NOT_PENDING: grpc.StatusCode.FAILED_PRECONDITION,
    Code.APPROVAL_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
    Code.ALREADY_REVIEWED: grpc.StatusCode.FAILED_PRECONDITION,
    Code.REASON_REQUIRED: grpc.StatusCode.INVALID_ARGUMENT,
    Code.APPROVAL_ID_MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    Code.GRANT_TTL_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Code.INVALID_APPROVAL_QUERY: grpc.StatusCode.INVALID_ARGUMENT,
    Code.APPROVALS_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Code.KEYS_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def grpc_status(code: Code) -> grpc.StatusCode:
    if code in _STATUS:
        return _STATUS[code]
    if status_of(code) == 401:
        return grpc.StatusCode.UNAUTHENTICATED
    return grpc.StatusCode.INTERNAL


def approval_message(approval: Approval) -> pb.Approval:
    policy = approval.policy
    target = approval.target
    return pb.Approval(
        id=approval.id,
        status=approval.status,
        rule=approval.rule,
        rule_reason=approval.rule_reason,
        requester=_person(approval.requester),
        method=target.method,
        path=target.path,
        route=target.route,
        model=target.model,
        target_region=target.target_region,
        request_digest=target.digest,
        justification=approval.justification,
        policy=pb.Policy(
            approver_groups=policy.approver_groups,
            thresholds=dict(policy.thresholds),
            any_of=policy.any_of,
            scope=policy.scope,
            grant_ttl_seconds=policy.grant_ttl_seconds,
            max_grant_ttl_seconds=policy.max_grant_ttl_seconds,
            pending_ttl_seconds=policy.pending_ttl_seconds,
            approve_reason_required=policy.approve_reason_required,
        ),
        reviews=[_review(review) for review in approval.reviews],
        created_at=timestamp(approval.created_at),
        expires_at=timestamp(approval.expires_at),
        resolved_at=timestamp(approval.resolved_at),
        resolve_reason=approval.resolve_reason,
        resolved_by=approval.resolved_by,
        grant_expires_at=timestamp(approval.grant_expires_at),
        request_id=approval.request_id,
        version=approval.version,
    )


def change_message(change: Change) -> pb.Change:
    return pb.Change(
        version=change.version,
        kind=change.kind,
        at=timestamp(change.at),
        approval=approval_message(change.approval),
    )


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def _person(person: Person) -> pb.Person:
    return pb.Person(subject=person.subject, issuer=person.issuer, groups=person.groups)


def _review(review: Review) -> pb.Review:
    return pb.Review(
        reviewer=_person(review.reviewer),
        verdict=review.verdict,
        reason=review.reason,
        at=timestamp(review.at),
        ttl_seconds=review.ttl_seconds or 0.0,
    )
