"""The Approvals gRPC API in-process, with real tokens from the development issuer: approvers
approve, the requester's own token is refused as self_approval, outsiders see nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from extproc.approval.ids import new_approval_id
from extproc.approval.model import Person
from extproc.approvals.api import approvals_pb2 as pb
from extproc.approvals.api import approvals_pb2_grpc
from extproc.demo.issuer import DevIssuer
from tests.support.approvals import ApprovalsServer, approvals_server, held_request

SAM = Person("sam", "demo", ("security",))


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path / "issuer")
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture
def server(tmp_path: Path, issuer: DevIssuer) -> Iterator[ApprovalsServer]:
    with approvals_server(tmp_path, issuer) as running:
        yield running


@pytest.fixture
def stub(server: ApprovalsServer) -> Iterator[Any]:
    with grpc.insecure_channel(server.address) as channel:
        yield approvals_pb2_grpc.ApprovalsStub(channel)


def auth(issuer: DevIssuer, sub: str, *groups: str, ttl: int = 600) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {issuer.mint(sub, groups, audience='api', ttl=ttl)}"),)


def refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    error: Any = caught.value
    code_metadata = dict(error.trailing_metadata() or ()).get("x-extproc-error", "")
    return error.code(), error.details(), code_metadata


def test_approvers_of_both_groups_grant_it_and_the_grant_carries_the_rules_clocks(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    first = stub.Approve(
        pb.ApproveRequest(id=approval.id, reason="eval plan checked"),
        metadata=auth(issuer, "sam", "security"),
    )
    assert first.status == "pending"
    assert [r.reviewer.subject for r in first.reviews] == ["sam"]
    second = stub.Approve(
        pb.ApproveRequest(id=approval.id, ttl_seconds=600), metadata=auth(issuer, "lee", "ml-leads")
    )
    assert second.status == "approved"
    assert second.resolved_by == "lee"
    assert second.grant_expires_at.ToSeconds() - second.resolved_at.ToSeconds() == 600
    assert second.requester.subject == "alice"
    assert second.justification == "nightly eval"
    assert dict(second.policy.thresholds) == {"security": 1, "ml-leads": 1}
    grant = server.runtime.store.find_grant("alice", approval.target.scope_key, time.time())
    assert grant is not None
    assert grant.id == approval.id


def test_the_requesters_own_token_is_refused_as_self_approval(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    code, details, error = refusal(
        stub.Approve,
        pb.ApproveRequest(id=approval.id),
        metadata=auth(issuer, "alice", "security", "ml-leads"),
    )
    assert (code, error) == (grpc.StatusCode.PERMISSION_DENIED, "self_approval")
    assert details.startswith("self_approval: ")
    assert server.runtime.store.get(approval.id).reviews == ()


def test_a_non_approver_is_refused_and_sees_nothing(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    outsider = auth(issuer, "olga", "staff")
    code, _details, error = refusal(stub.Get, pb.GetRequest(id=approval.id), metadata=outsider)
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "approval_not_found")
    # Every action answers a real id exactly as a made-up one: no rule name, no state.
    made_up = new_approval_id()
    resolved = server.runtime.store.create(held_request(path="/v1/other")).approval
    server.runtime.store.review(
        resolved.id, SAM, "deny", reason="no", ttl_seconds=None, now=time.time()
    )
    for approval_id in (approval.id, resolved.id, made_up):
        for call, request in (
            (stub.Approve, pb.ApproveRequest(id=approval_id)),
            (stub.Deny, pb.DenyRequest(id=approval_id, reason="no")),
            (stub.Revoke, pb.RevokeRequest(id=approval_id, reason="no")),
        ):
            code, details, error = refusal(call, request, metadata=outsider)
            assert (code, error, details) == (
                grpc.StatusCode.NOT_FOUND,
                "approval_not_found",
                f"approval_not_found: no approval {approval_id}",
            )
    assert server.runtime.store.get(approval.id).reviews == ()
    assert list(stub.List(pb.ListRequest(), metadata=outsider).approvals) == []
    # The requester sees their own request.
    mine = stub.Get(pb.GetRequest(id=approval.id), metadata=auth(issuer, "alice"))
    assert mine.status == "pending"


def test_the_same_subject_from_another_issuer_neither_sees_nor_withdraws(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    # The request is alice's at another trusted issuer; this alice is someone else.
    theirs = replace(held_request(), requester=Person("alice", "corp-sso", ("ml-eu",)))
    approval = server.runtime.store.create(theirs).approval
    namesake = auth(issuer, "alice")
    code, _details, error = refusal(stub.Get, pb.GetRequest(id=approval.id), metadata=namesake)
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "approval_not_found")
    assert list(stub.List(pb.ListRequest(), metadata=namesake).approvals) == []
    code, _details, error = refusal(
        stub.Revoke, pb.RevokeRequest(id=approval.id, reason="mine"), metadata=namesake
    )
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "approval_not_found")
    assert server.runtime.store.get(approval.id).status == "pending"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ((), "missing_token"),
        ((("authorization", "Basic abc"),), "malformed_token"),
        ((("authorization", "Bearer not.a.jwt"),), "malformed_token"),
    ],
)
def test_calls_without_a_valid_token_are_unauthenticated(
    server: ApprovalsServer, stub: Any, metadata: Any, error: str
) -> None:
    code, _details, got = refusal(stub.List, pb.ListRequest(), metadata=metadata)
    assert (code, got) == (grpc.StatusCode.UNAUTHENTICATED, error)


def test_expired_and_forged_tokens_are_unauthenticated(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    expired = issuer.mint("sam", ["security"], audience="api", ttl=-120)
    code, _details, error = refusal(
        stub.List, pb.ListRequest(), metadata=(("authorization", f"Bearer {expired}"),)
    )
    assert (code, error) == (grpc.StatusCode.UNAUTHENTICATED, "token_expired")
    wrong_audience = issuer.mint("sam", ["security"], audience="other")
    code, _details, error = refusal(
        stub.List, pb.ListRequest(), metadata=(("authorization", f"Bearer {wrong_audience}"),)
    )
    assert (code, error) == (grpc.StatusCode.UNAUTHENTICATED, "invalid_audience")


def test_unknown_and_malformed_ids(server: ApprovalsServer, stub: Any, issuer: DevIssuer) -> None:
    sam = auth(issuer, "sam", "security")
    code, details, error = refusal(stub.Get, pb.GetRequest(id="apr_" + "Z" * 22), metadata=sam)
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "approval_not_found")
    code, details, error = refusal(stub.Approve, pb.ApproveRequest(id="42"), metadata=sam)
    assert (code, error) == (grpc.StatusCode.INVALID_ARGUMENT, "approval_id_malformed")
    assert "'42' is not an approval id" in details


def test_deny_needs_a_reason_wins_at_once_and_closes_the_request(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    sam, lee = auth(issuer, "sam", "security"), auth(issuer, "lee", "ml-leads")
    stub.Approve(pb.ApproveRequest(id=approval.id), metadata=sam)
    code, _details, error = refusal(stub.Approve, pb.ApproveRequest(id=approval.id), metadata=sam)
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "already_reviewed")
    code, _details, error = refusal(stub.Deny, pb.DenyRequest(id=approval.id), metadata=lee)
    assert (code, error) == (grpc.StatusCode.INVALID_ARGUMENT, "reason_required")
    denied = stub.Deny(pb.DenyRequest(id=approval.id, reason="not on prod data"), metadata=lee)
    assert (denied.status, denied.resolve_reason) == ("denied", "not on prod data")
    code, _details, error = refusal(
        stub.Approve, pb.ApproveRequest(id=approval.id), metadata=auth(issuer, "sue", "security")
    )
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "approval_not_pending")


def test_a_grant_ttl_beyond_the_cap_is_refused(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    code, details, error = refusal(
        stub.Approve,
        pb.ApproveRequest(id=approval.id, ttl_seconds=7201),
        metadata=auth(issuer, "sam", "security"),
    )
    assert (code, error) == (grpc.StatusCode.INVALID_ARGUMENT, "grant_ttl_invalid")
    assert "at most 7200s" in details


def test_revoke_ends_a_grant_and_the_requester_may_withdraw(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    store = server.runtime.store
    approval = store.create(held_request()).approval
    stub.Approve(pb.ApproveRequest(id=approval.id), metadata=auth(issuer, "sam", "security"))
    stub.Approve(pb.ApproveRequest(id=approval.id), metadata=auth(issuer, "lee", "ml-leads"))
    code, _details, error = refusal(
        stub.Revoke, pb.RevokeRequest(id=approval.id), metadata=auth(issuer, "sue", "security")
    )
    assert (code, error) == (grpc.StatusCode.INVALID_ARGUMENT, "reason_required")
    revoked = stub.Revoke(
        pb.RevokeRequest(id=approval.id, reason="incident"),
        metadata=auth(issuer, "sue", "security"),
    )
    assert revoked.status == "revoked"
    assert store.find_grant("alice", approval.target.scope_key, time.time()) is None
    again = store.create(held_request()).approval
    withdrawn = stub.Revoke(
        pb.RevokeRequest(id=again.id, reason="wrong model"), metadata=auth(issuer, "alice")
    )
    assert (withdrawn.status, withdrawn.resolved_by) == ("revoked", "alice")


def test_list_filters_by_status_and_refuses_an_unknown_one(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    store = server.runtime.store
    waiting = store.create(held_request("alice")).approval
    other = store.create(held_request("bob")).approval
    sam = auth(issuer, "sam", "security")
    stub.Deny(pb.DenyRequest(id=other.id, reason="no"), metadata=sam)
    assert [a.id for a in stub.List(pb.ListRequest(), metadata=sam).approvals] == [
        other.id,
        waiting.id,
    ]
    pending = stub.List(pb.ListRequest(status="pending"), metadata=sam).approvals
    assert [a.id for a in pending] == [waiting.id]
    assert len(stub.List(pb.ListRequest(limit=1), metadata=sam).approvals) == 1
    code, _details, error = refusal(stub.List, pb.ListRequest(status="maybe"), metadata=sam)
    assert (code, error) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_approval_query")


def test_watch_streams_the_changes_the_caller_may_see(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    store = server.runtime.store
    seen: list[tuple[str, str]] = []
    outsider_seen: list[str] = []
    streams = [
        stub.Watch(pb.WatchRequest(), metadata=auth(issuer, "sam", "security")),
        stub.Watch(pb.WatchRequest(), metadata=auth(issuer, "olga", "staff")),
    ]

    def read(stream: Any, into: list[Any], count: int) -> None:
        try:
            for change in stream:
                into.append((change.kind, change.approval.id))
                if len(into) == count:
                    return
        except grpc.RpcError:
            return

    readers = [
        threading.Thread(target=read, args=(streams[0], seen, 4), daemon=True),
        threading.Thread(target=read, args=(streams[1], outsider_seen, 1), daemon=True),
    ]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    approval = store.create(held_request()).approval
    stub.Approve(pb.ApproveRequest(id=approval.id), metadata=auth(issuer, "sam", "security"))
    stub.Approve(pb.ApproveRequest(id=approval.id), metadata=auth(issuer, "lee", "ml-leads"))
    readers[0].join(10)
    assert seen == [
        ("requested", approval.id),
        ("reviewed", approval.id),
        ("reviewed", approval.id),
        ("granted", approval.id),
    ]
    for stream in streams:
        stream.cancel()
    readers[1].join(10)
    assert outsider_seen == []


def test_a_watch_ends_when_the_token_that_opened_it_expires(
    server: ApprovalsServer, stub: Any, issuer: DevIssuer
) -> None:
    # The issuer's leeway is 30 s by default: a token "expiring" in -29 s is still valid.
    stream = stub.Watch(pb.WatchRequest(), metadata=auth(issuer, "sam", "security", ttl=-28))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token_expired" in (caught.value.details() or "")
    assert time.monotonic() - started < 10
