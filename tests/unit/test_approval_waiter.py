"""Waiting for approvals from asyncio: one poller for many held requests, the feed as a stream."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from extproc.approval.model import Approval
from extproc.approvals.sqlite import SqliteApprovalStore
from extproc.approvals.waiter import ApprovalWaiter, follow_changes
from tests.unit.test_approval_rules import SEC, T0, pending
from tests.unit.test_approval_store import SPAWN, _other_target, _review_in_child


def many_pending(store: SqliteApprovalStore, count: int) -> list[Approval]:
    opened = []
    for i in range(count):
        approval = pending()
        target = replace(approval.target, scope_key=f"{i}-{approval.target.scope_key}")
        opened.append(store.create(replace(approval, target=target)).approval)
    return opened


def test_a_decision_in_another_process_wakes_only_its_waiter(tmp_path: Path) -> None:
    store = SqliteApprovalStore(tmp_path / "approvals.db")
    approvals = many_pending(store, 20)
    waiter = ApprovalWaiter(store, poll_interval=0.05)

    async def scenario() -> tuple[list[Approval], float, int]:
        tasks = [asyncio.create_task(waiter.wait_resolved(a.id, timeout=3.0)) for a in approvals]
        await asyncio.sleep(0.3)
        assert waiter.waiting == 20
        barrier, out = SPAWN.Barrier(1), SPAWN.Queue()
        child = SPAWN.Process(
            target=_review_in_child,
            args=(str(store.path), approvals[7].id, SEC, "approve", barrier, out),
        )
        child.start()
        await asyncio.to_thread(out.get, True, 30)
        decided = time.monotonic()
        first = await tasks[7]
        latency = time.monotonic() - decided
        rest = await asyncio.gather(*tasks)
        await asyncio.to_thread(child.join, 10)
        return [first, *rest], latency, waiter.waiting

    results, latency, left = asyncio.run(scenario())
    assert results[0].status == "approved"
    assert latency < 0.25
    statuses = [r.status for r in results[1:]]
    assert statuses.count("approved") == 1  # the same one, awaited twice above
    assert statuses.count("pending") == 19  # the others timed out, still pending
    assert left == 0
    store.close()


def test_an_already_decided_approval_returns_at_once(tmp_path: Path) -> None:
    store = SqliteApprovalStore(tmp_path / "approvals.db")
    approval = store.create(pending()).approval
    store.review(approval.id, SEC, "deny", reason="no", ttl_seconds=None, now=T0 + 1)
    waiter = ApprovalWaiter(store)
    started = time.monotonic()
    assert asyncio.run(waiter.wait_resolved(approval.id, timeout=5)).status == "denied"
    assert time.monotonic() - started < 1.0
    store.close()


def test_follow_changes_streams_the_feed_from_a_version(tmp_path: Path) -> None:
    store = SqliteApprovalStore(tmp_path / "approvals.db")
    approval = store.create(pending()).approval
    other = pending()
    other = replace(other, target=_other_target(other))

    async def scenario() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        stream = follow_changes(lambda: store, 0, poll_interval=0.02)

        async def read() -> None:
            async for change in stream:
                seen.append((change.kind, change.approval.id))
                if len(seen) == 4:
                    return

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        await asyncio.to_thread(store.create, other)
        await asyncio.to_thread(
            store.review, approval.id, SEC, "approve", reason=None, ttl_seconds=None, now=T0 + 1
        )
        await asyncio.wait_for(reader, 5)
        return seen

    assert asyncio.run(scenario()) == [
        ("requested", approval.id),
        ("requested", other.id),
        ("reviewed", approval.id),
        ("granted", approval.id),
    ]
    store.close()
