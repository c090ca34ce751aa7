"""The SQLite approval store: transitions, grants, the change feed, and several processes on
one file (a review in one releases a waiter in another; concurrent reviews resolve once; a
restart keeps pending approvals and grants)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import time
from dataclasses import replace
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from extproc.approval.model import Approval, Person, Target
from extproc.approval.policy import ApprovalPolicy
from extproc.approvals.sqlite import SqliteApprovalStore
from extproc.errors import ApprovalError, Code
from tests.unit.test_approval_rules import ALICE, ANY_TWO, LEAD, ONE, SEC, SEC2, T0, pending

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SqliteApprovalStore(tmp_path / "state" / "approvals.db", poll_interval=0.02)
    yield opened
    opened.close()


def test_a_created_approval_reads_back_and_lists_newest_first(
    store: SqliteApprovalStore, tmp_path: Path
) -> None:
    first = store.create(pending()).approval
    second = store.create(pending(ONE))
    assert second.created is False  # same subject and scope: the retry joins the first
    assert second.approval.id == first.id
    assert store.get(first.id) == first
    assert [a.id for a in store.list()] == [first.id]
    assert store.list(status="approved") == []
    assert stat.S_IMODE((tmp_path / "state" / "approvals.db").stat().st_mode) == 0o600
    assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_and_malformed_ids_are_refused_before_and_after_lookup(
    store: SqliteApprovalStore,
) -> None:
    with pytest.raises(ApprovalError) as caught:
        store.get("apr_" + "A" * 22)
    assert caught.value.code == Code.APPROVAL_NOT_FOUND
    with pytest.raises(ApprovalError) as caught:
        store.review(
            "'; DROP TABLE approvals; --", SEC, "approve", reason=None, ttl_seconds=None, now=T0
        )
    assert caught.value.code == Code.APPROVAL_ID_MALFORMED


def test_reviews_go_through_the_rules_and_the_feed_records_each_step(
    store: SqliteApprovalStore,
) -> None:
    approval = store.create(pending(ANY_TWO)).approval
    start = store.version()
    with pytest.raises(ApprovalError) as caught:
        store.review(approval.id, ALICE, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    assert caught.value.code == Code.SELF_APPROVAL
    store.review(approval.id, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    done = store.review(approval.id, LEAD, "approve", reason="ok", ttl_seconds=60, now=T0 + 2)
    assert done.status == "approved"
    assert store.get(approval.id) == done
    changes = store.changes(start)
    assert [(c.kind, c.approval.status) for c in changes] == [
        ("reviewed", "pending"),
        ("reviewed", "approved"),
        ("granted", "approved"),
    ]
    assert [c.version for c in changes] == [start + 1, start + 2, start + 3]
    assert store.changes(start, limit=1)[0].approval.reviews[-1].reviewer.subject == "sam"
    assert store.version() == start + 3


def test_a_grant_is_found_for_its_subject_and_scope_until_it_ends_or_is_revoked(
    store: SqliteApprovalStore,
) -> None:
    approval = store.create(pending()).approval
    key = approval.target.scope_key
    assert store.find_grant("alice", key, T0 + 2) is None  # pending lets nothing through
    granted = store.review(approval.id, SEC, "approve", reason=None, ttl_seconds=100, now=T0 + 1)
    assert store.find_grant("alice", key, T0 + 2) == granted
    assert store.find_grant("mallory", key, T0 + 2) is None
    assert store.find_grant("alice", "other-scope", T0 + 2) is None
    assert store.find_grant("alice", key, T0 + 101) is None  # ran out, even before expire()
    store.revoke(approval.id, SEC2, reason="incident closed", now=T0 + 3)
    assert store.find_grant("alice", key, T0 + 4) is None
    # Held again: a new request opens a new approval.
    again = store.create(pending())
    assert again.created is True
    assert again.approval.id != approval.id


def test_expire_ends_pending_requests_and_grants_once_and_reopens_the_scope(
    store: SqliteApprovalStore,
) -> None:
    waiting = store.create(pending()).approval
    granted_policy = ApprovalPolicy(approver_groups=("security",), any_of=1)
    other = pending(granted_policy)
    other = replace(other, target=_other_target(other))
    store.create(other)
    store.review(other.id, SEC, "approve", reason=None, ttl_seconds=10, now=T0 + 1)
    assert store.expire(T0 + 5) == []
    ended = store.expire(T0 + 2 * 3600)
    assert sorted(a.status for a in ended) == ["expired", "expired"]
    assert store.expire(T0 + 3 * 3600) == []
    assert store.get(waiting.id).status == "expired"
    kinds = [c.kind for c in store.changes(0)]
    assert kinds.count("expired") == 2
    # A retry after the pending request expired opens a fresh one, even before expire() ran.
    late = pending()
    assert store.create(late).created is True


def test_an_expired_pending_twin_is_expired_when_a_retry_arrives(
    store: SqliteApprovalStore,
) -> None:
    first = store.create(pending()).approval
    later = pending()
    later = replace(later, created_at=T0 + 4000, expires_at=T0 + 9000)
    opened = store.create(later)
    assert opened.created is True
    assert store.get(first.id).status == "expired"


def test_cursors_remember_how_far_a_reader_got(store: SqliteApprovalStore) -> None:
    assert store.cursor("notifier") is None
    store.save_cursor("notifier", 7)
    store.save_cursor("notifier", 9)
    assert store.cursor("notifier") == 9


def test_a_closed_store_fails_closed(tmp_path: Path) -> None:
    closed = SqliteApprovalStore(tmp_path / "a.db")
    closed.close()
    with pytest.raises(ApprovalError) as caught:
        closed.list()
    assert caught.value.code == Code.APPROVALS_UNAVAILABLE


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "approvals.db"
    bogus.write_bytes(b"not a database" * 1000)
    with pytest.raises(ApprovalError) as caught:
        SqliteApprovalStore(bogus)
    assert caught.value.code == Code.APPROVALS_UNAVAILABLE


def test_wait_for_change_returns_at_once_when_already_changed_and_at_timeout_otherwise(
    store: SqliteApprovalStore,
) -> None:
    approval = store.create(pending()).approval
    assert store.wait_for_change(approval.id, 0, timeout=5).version == 1
    started = time.monotonic()
    assert store.wait_for_change(approval.id, 1, timeout=0.2).version == 1
    assert 0.2 <= time.monotonic() - started < 1.0


# -- several processes ---------------------------------------------------------------------------
def _wait_in_child(path: str, approval_id: str, ready: Event, out: Any) -> None:
    store = SqliteApprovalStore(Path(path), poll_interval=0.05)
    ready.set()
    approval = store.wait_for_change(approval_id, 1, timeout=20)
    out.put((approval.status, time.time()))
    store.close()


def _review_in_child(
    path: str, approval_id: str, who: Person, verdict: str, barrier: Barrier, out: Any
) -> None:
    store = SqliteApprovalStore(Path(path))
    barrier.wait()
    try:
        done = store.review(approval_id, who, verdict, reason="r", ttl_seconds=None, now=T0 + 1)  # type: ignore[arg-type]
        out.put(("ok", done.status))
    except ApprovalError as exc:
        out.put(("refused", str(exc.code)))
    store.close()


def test_a_review_in_one_process_releases_a_waiter_in_another_within_250_ms(
    store: SqliteApprovalStore,
) -> None:
    approval = store.create(pending()).approval
    ready, out = SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(target=_wait_in_child, args=(str(store.path), approval.id, ready, out))
    child.start()
    assert ready.wait(30)
    time.sleep(0.3)  # the child is polling now
    store.review(approval.id, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    decided_at = time.time()
    status, released_at = out.get(timeout=20)
    child.join(10)
    assert status == "approved"
    assert released_at - decided_at < 0.25


@pytest.mark.parametrize("verdicts", [("approve",) * 4, ("approve", "deny", "approve", "deny")])
def test_concurrent_reviews_from_several_processes_resolve_exactly_once(
    store: SqliteApprovalStore, verdicts: tuple[str, ...]
) -> None:
    reviewers = [Person(f"sec-{i}", "corp", ("security",)) for i in range(len(verdicts))]
    for _round in range(3):
        approval = store.create(pending()).approval
        start = store.version()
        barrier, out = SPAWN.Barrier(len(verdicts)), SPAWN.Queue()
        children = [
            SPAWN.Process(
                target=_review_in_child,
                args=(str(store.path), approval.id, who, verdict, barrier, out),
            )
            for who, verdict in zip(reviewers, verdicts, strict=True)
        ]
        for child in children:
            child.start()
        results = [out.get(timeout=60) for _ in children]
        for child in children:
            child.join(10)
        assert [r[0] for r in results].count("ok") == 1, results
        assert all(r == ("refused", "approval_not_pending") for r in results if r[0] != "ok")
        kinds = [c.kind for c in store.changes(start)]
        assert kinds.count("granted") + kinds.count("denied") == 1
        final = store.get(approval.id)
        assert final.status in ("approved", "denied")
        assert len(final.reviews) == 1
        if final.status == "approved":  # free the scope for the next round
            store.revoke(approval.id, SEC, reason="next round", now=T0 + 2)


def _reopen_in_child(path: str, approval_ids: list[str], out: Any) -> None:
    store = SqliteApprovalStore(Path(path))
    found = [store.get(i) for i in approval_ids]
    grant = store.find_grant("alice", found[1].target.scope_key, T0 + 10)
    out.put(([a.status for a in found], grant.id if grant else None))
    store.close()


def test_a_restart_keeps_pending_approvals_and_grants(tmp_path: Path) -> None:
    path = tmp_path / "approvals.db"
    first = SqliteApprovalStore(path)
    waiting = first.create(pending()).approval
    other = pending()
    other = replace(other, target=_other_target(other))
    first.create(other)
    first.review(other.id, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1)
    first.close()
    out = SPAWN.Queue()
    child = SPAWN.Process(target=_reopen_in_child, args=(str(path), [waiting.id, other.id], out))
    child.start()
    statuses, grant = out.get(timeout=30)
    child.join(10)
    assert statuses == ["pending", "approved"]
    assert grant == other.id


# -- helpers -------------------------------------------------------------------------------------
def _other_target(approval: Approval) -> Target:
    return replace(approval.target, scope_key="other-" + approval.target.scope_key)
