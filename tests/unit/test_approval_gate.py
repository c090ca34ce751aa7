"""The data path's approval step: a grant lets the exact request (or route) through, anything
else opens or joins the approval waiting for it; what a held request gets once it resolves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from extproc.approval.gate import Admission, admit
from extproc.approval.policy import ApprovalPolicy
from extproc.approval.rules import held_outcome
from extproc.approvals.sqlite import SqliteApprovalStore
from extproc.decision import MAX_RECORDED_MODEL_CHARS, MODEL_CUT_MARKER
from extproc.errors import ApprovalError, Code
from tests.unit.test_approval_rules import ONE, SEC, T0, decision

BODY = b'{"model": "gpt-big", "messages": [{"role": "user", "content": "hi"}]}'
SAME_BODY_REFORMATTED = b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-big"}'
OTHER_BODY = b'{"model": "gpt-big", "messages": [{"role": "user", "content": "bye"}]}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteApprovalStore]:
    opened = SqliteApprovalStore(tmp_path / "approvals.db")
    yield opened
    opened.close()


def ask(
    store: SqliteApprovalStore,
    body: bytes = BODY,
    policy: ApprovalPolicy = ONE,
    now: float = T0,
    justification: str | None = "eval",
) -> Admission:
    return admit(
        store,
        decision(),
        policy,
        method="POST",
        path="/v1/chat",
        route="chat",
        body=body,
        justification=justification,
        now=now,
    )


def test_without_a_grant_a_request_opens_an_approval_and_retries_join_it(
    store: SqliteApprovalStore,
) -> None:
    first = ask(store)
    assert first.grant is None
    assert first.pending is not None
    assert first.created
    assert first.pending.target.model == "gpt-big"
    retry = ask(store, SAME_BODY_REFORMATTED, now=T0 + 5)
    assert retry.pending is not None
    assert (retry.pending.id, retry.created) == (first.pending.id, False)


def test_a_request_scope_grant_lets_only_that_exact_request_through(
    store: SqliteApprovalStore,
) -> None:
    opened = ask(store).pending
    assert opened is not None
    store.review(opened.id, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    again = ask(store, SAME_BODY_REFORMATTED, now=T0 + 2, justification=None)
    assert again.grant is not None
    assert again.grant.id == opened.id
    assert held_outcome(again.grant, T0 + 2) is None
    different = ask(store, OTHER_BODY, now=T0 + 2)
    assert different.grant is None  # another prompt is another request: held again
    assert different.created


def test_a_route_scope_grant_covers_any_request_of_the_route_and_model(
    store: SqliteApprovalStore,
) -> None:
    route_scope = replace(ONE, scope="route")
    opened = ask(store, policy=route_scope).pending
    assert opened is not None
    store.review(opened.id, SEC, "approve", reason=None, ttl_seconds=60, now=T0 + 1)
    assert ask(store, OTHER_BODY, policy=route_scope, now=T0 + 2).grant is not None
    expired = ask(store, OTHER_BODY, policy=route_scope, now=T0 + 62)
    assert expired.grant is None
    assert expired.pending is not None


def test_justification_rules_apply_to_new_requests(store: SqliteApprovalStore) -> None:
    strict = replace(ONE, justification_required=True, justification_max_bytes=8)
    with pytest.raises(ApprovalError) as caught:
        ask(store, policy=strict, justification=None)
    assert caught.value.code == Code.JUSTIFICATION_REQUIRED
    with pytest.raises(ApprovalError) as caught:
        ask(store, policy=strict, justification="far too long a story")
    assert caught.value.code == Code.JUSTIFICATION_TOO_LONG


def test_what_a_held_request_gets_once_its_approval_resolves(store: SqliteApprovalStore) -> None:
    opened = ask(store).pending
    assert opened is not None
    assert held_outcome(opened, T0 + 1) == Code.APPROVAL_REQUIRED
    denied = store.review(opened.id, SEC, "deny", reason="no", ttl_seconds=None, now=T0 + 1)
    assert held_outcome(denied, T0 + 2) == Code.APPROVAL_DENIED
    again = ask(store, now=T0 + 3).pending
    assert again is not None
    granted = store.review(again.id, SEC, "approve", reason=None, ttl_seconds=30, now=T0 + 4)
    assert held_outcome(granted, T0 + 5) is None
    assert held_outcome(granted, T0 + 40) == Code.APPROVAL_REQUIRED  # the grant ran out


def test_an_approval_records_the_model_bounded_and_its_digest_covers_the_whole_name(
    store: SqliteApprovalStore,
) -> None:
    def opened(model: str) -> Admission:
        return admit(
            store, decision()._replace(model=model), ONE, method="POST", path="/v1/chat",
            route="chat", body=BODY, justification="eval", now=T0,
        )  # fmt: skip

    first, second = opened("a" * 300 + "1"), opened("a" * 300 + "2")
    assert first.pending is not None
    assert second.pending is not None
    assert first.pending.target.model == second.pending.target.model
    assert len(first.pending.target.model) == MAX_RECORDED_MODEL_CHARS
    assert first.pending.target.model.endswith(MODEL_CUT_MARKER)
    assert first.pending.target.digest != second.pending.target.digest
    assert first.pending.id != second.pending.id
