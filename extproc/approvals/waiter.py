"""Waiting for approvals from asyncio: one poller per process, however many requests wait.

``ApprovalWaiter.wait_resolved`` is what the processor awaits while it holds a request: it
returns the approval as soon as it leaves ``pending`` (approved, denied, revoked, expired) in
any process, or as it is when the timeout ends. One task reads the store's change feed every
``poll_interval`` seconds while anyone waits, and wakes the waiters of the approvals that
changed; the store is only ever called from worker threads, so the event loop never blocks on
SQLite. ``follow_changes`` streams the feed itself (the Watch API).

With a backend that can push (PostgreSQL LISTEN/NOTIFY) the poll becomes a wait on the
notification; neither method's callers change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from extproc.approval.model import Approval
from extproc.approval.store import ApprovalStore, Change

log = logging.getLogger("extproc.approvals")
_BATCH = 500


class ApprovalWaiter:
    def __init__(self, store: ApprovalStore, *, poll_interval: float = 0.1) -> None:
        self._store = store
        self._interval = poll_interval
        self._waiting: dict[str, set[asyncio.Future[Approval]]] = {}
        self._since = 0
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def wait_resolved(self, approval_id: str, timeout: float) -> Approval:
        """The approval once it is no longer pending, or as it is after ``timeout`` seconds."""
        future: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(approval_id, set()).add(future)
        try:
            # The poller's starting version is read before the approval: a decision taken in
            # between is in the feed after that version, so it cannot slip past.
            await self._ensure_polling()
            current = await asyncio.to_thread(self._store.get, approval_id)
            if not current.pending:
                return current
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                return await asyncio.to_thread(self._store.get, approval_id)
        finally:
            waiters = self._waiting.get(approval_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiting[approval_id]

    @property
    def waiting(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    async def _ensure_polling(self) -> None:
        async with self._starting:  # one poller, and only its starter sets where it starts
            if self._task is not None and not self._task.done():
                return
            self._since = await asyncio.to_thread(self._store.version)
            self._task = asyncio.create_task(self._poll(), name="approval-waiter")

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(self._interval)
            try:
                changes = await asyncio.to_thread(self._store.changes, self._since, _BATCH)
            except Exception as exc:  # the store is down: keep waiting, the timeout still ends it
                log.warning("approval poll failed", extra={"error_type": type(exc).__name__})
                continue
            for change in changes:
                self._since = change.version
                if change.approval.pending:
                    continue
                for future in self._waiting.get(change.approval.id, ()):
                    if not future.done():
                        future.set_result(change.approval)
        self._task = None


async def follow_changes(
    store_of: Callable[[], ApprovalStore],
    since_version: int | None,
    *,
    poll_interval: float = 0.1,
    stop: Callable[[], bool] = lambda: False,
) -> AsyncIterator[Change]:
    """Every change after ``since_version`` (None: from now on), as it happens, until ``stop()``
    says so. ``store_of`` is asked on every poll, so a stream outlives a config reload."""
    since = await asyncio.to_thread(store_of().version) if since_version is None else since_version
    while not stop():
        changes = await asyncio.to_thread(store_of().changes, since, _BATCH)
        for change in changes:
            since = change.version
            yield change
        if len(changes) < _BATCH:
            await asyncio.sleep(poll_interval)
