"""The approvals service's background work: expire what ran out, and publish every change of
the store (to the audit trail and to the webhooks).

Whichever process made a change (authz opening a request, this service recording a review, the
sweep expiring one), the change lands in the store's feed; one reader, worker 0 of the
approvals service, turns each into its audit event (``extproc.approval.events``) and its
webhook deliveries, then saves its cursor in the store. A restart resumes after the last change
it saved: at least once, so a crash between publishing and saving can repeat a batch, never
skip one. ``used`` is the one event the data path records itself (it changes nothing stored).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from extproc.approval.events import approval_event, rfc3339
from extproc.approvals.runtime import ApprovalsRuntime
from extproc.reload import RuntimeHolder

log = logging.getLogger("extproc.approvals")
CONSUMER = "approvals-service"
BATCH = 500


def publish_changes(runtime: ApprovalsRuntime) -> int:
    """Publish one batch of unpublished changes; returns how many there were."""
    store = runtime.store
    since = store.cursor(CONSUMER) or 0
    changes = store.changes(since, BATCH)
    for change in changes:
        at = rfc3339(change.at)
        if runtime.audit is not None:
            event = approval_event(change.kind, change.approval, time=at, service="approvals")
            if not runtime.audit.submit(event):
                log.error(
                    "audit queue full; approval event not accepted",
                    extra={"approval_id": change.approval.id, "event": change.kind},
                )
        runtime.notifier.submit(change.kind, change.approval, version=change.version, time=at)
    if changes:
        store.save_cursor(CONSUMER, changes[-1].version)
    return len(changes)


def expire_due(runtime: ApprovalsRuntime) -> int:
    ended = runtime.store.expire(runtime.clock.wall())
    for approval in ended:
        log.info(
            "approval expired",
            extra={"approval_id": approval.id, "rule": approval.rule, "was": _was(approval)},
        )
    return len(ended)


async def run_background(holder: RuntimeHolder[Any]) -> None:
    """Forever: sweep every ``expire_interval``, publish every ``poll_interval``. A failure is
    logged and tried again on the next round; it never stops the service."""
    last_sweep = float("-inf")
    while True:
        runtime: ApprovalsRuntime = holder.current
        settings = runtime.settings
        try:
            if time.monotonic() - last_sweep >= settings.expire_interval_seconds:
                last_sweep = time.monotonic()
                await asyncio.to_thread(expire_due, runtime)
            while await asyncio.to_thread(publish_changes, runtime) == BATCH:
                pass
        except Exception as exc:
            log.warning(
                "approval background work failed; retrying",
                extra={"error_type": type(exc).__name__, "reason": getattr(exc, "reason", "")},
            )
        await asyncio.sleep(settings.poll_interval_seconds)


def _was(approval: Any) -> str:
    return "granted" if approval.grant_expires_at is not None else "pending"
