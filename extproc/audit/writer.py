"""The audit writer: a bounded backlog on the request path, batched durable writes off it.

Rules (each has a test):
- ``submit`` is O(1): one uncontended lock, a bounds check and an append. It returns True once
  the event is accepted, and an accepted event is written or, if the process stops before that,
  counted, logged and noted for the chain's next writer (see ``pending``): never dropped
  silently.
- ``submit_durable`` returns a ``Future`` that becomes True once the event is durable (written
  and fsynced) or False if it never will be. Events a caller waits for share one write + fsync
  with everything that arrives within ``commit_window`` (group commit). ``open_exchange`` and
  ``close_exchange`` write an exchange's ``open`` (durably) and ``close`` records; an open keeps
  room for its close, so a close is never refused for a full backlog.
- ``accepting()`` is False whenever an event submitted now might not become durable: the backlog
  full, writes failing (until one works again), or the writer closed. A caller checks it before
  it lets an exchange start.
- When the backlog is full the configured policy applies: ``block`` waits up to
  ``block_timeout`` for room, ``deny`` does not wait, and neither waits while writes fail. The
  event is refused (False), ``rejected`` counts it, and the caller must deny its request with
  ``audit_unavailable``.
- Every refusal and every failed write is written into the chain as a ``recovery`` record once a
  write works again (see ``gaps``).
- One background thread (see ``committer``) writes the backlog in batches, retries failed
  writes, and tells the callers who wait for durability.
- ``close`` stops accepting, writes everything accepted, and returns how many events it could
  not write (0 unless the disk kept failing past the timeout).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from extproc.audit import gaps
from extproc.audit.backlog import Backlog
from extproc.audit.committer import Committer, WriterState
from extproc.audit.event import EVENT_FIELDS, unknown_fields, utc_timestamp
from extproc.audit.exchanges import CLOSE, OPEN
from extproc.audit.store import ChainFiles, ChainStore
from extproc.audit.writer_settings import WriterSettings

__all__ = ["AuditWriter", "WriterSettings"]
log = logging.getLogger("extproc.audit")
_CLOSED = "closed"  # a refusal the chain cannot record: the writer is gone


class AuditWriter:
    """Writes one chain. ``AuditWriter(directory, chain, key, settings)`` writes JSONL files;
    ``AuditWriter.over(store, settings)`` writes through any ``ChainStore``. Thread-safe: submit
    from the event loop's thread and from worker threads alike."""

    def __init__(
        self, directory: Path, chain: str, key: bytes, settings: WriterSettings | None = None
    ) -> None:
        settings = settings or WriterSettings()
        self._start(ChainFiles(directory, chain, key, rotate_bytes=settings.rotate_bytes), settings)

    @classmethod
    def over(cls, store: ChainStore, settings: WriterSettings | None = None) -> AuditWriter:
        writer = cls.__new__(cls)
        writer._start(store, settings or WriterSettings())
        return writer

    def _start(self, store: ChainStore, settings: WriterSettings) -> None:
        self.settings = settings
        self._store = store
        self._deny_when_full = settings.when_full == "deny"
        backlog = Backlog(settings.queue_max_events, settings.batch_max_events)
        self._state = state = WriterState(backlog)
        self._backlog = state.backlog
        self._lock, self._room = state.lock, state.room
        self._committer = Committer(store, settings, state)
        self._committer.thread.start()
        atexit.register(self.close)  # events accepted before exit are still written

    @property
    def chain(self) -> str:
        return self._store.chain

    # -- the request path ---------------------------------------------------------------------
    def submit(self, event: Mapping[str, Any]) -> bool:
        """Accept ``event`` for writing, or return False (refused: see the module rules).

        The event is kept by reference until written: the caller must not change it after.
        Under ``block`` this call may wait up to ``block_timeout``; an asyncio caller that must
        never stall its loop should call it from a thread when ``queue_depth`` is at the limit.
        Raises ``ValueError`` for a field the event model does not have: a programming error,
        and the guard that keeps body content out of the trail."""
        event = _checked(event)
        state = self._state
        with state.lock:
            if state.accepting and state.backlog.has_room():  # the common case, kept short
                if state.backlog.add(event):
                    state.work.notify()
                state.submitted += 1
                return True
            return self._admit(event, None)

    def submit_durable(self, event: Mapping[str, Any]) -> Future[bool]:
        """Like ``submit``, but the result says when the event is durable: True once its batch
        is fsynced, False when refused or when its write failed (then it is not in the trail,
        and the chain's next gap record counts it). Await it with ``asyncio.wrap_future``;
        cancelling the awaiting task does not withdraw the event."""
        return self._durable(_checked(event), None)

    def open_exchange(self, event: Mapping[str, Any]) -> Future[bool]:
        """Write the ``open`` record of an exchange (``request_id`` required) durably, as
        ``submit_durable``, and keep room for its close. The request may reach the model only
        once the result is True. Call ``close_exchange`` for every open that was True."""
        event = _checked(event, OPEN)
        return self._durable(event, str(event["request_id"]))

    def close_exchange(self, event: Mapping[str, Any]) -> bool:
        """Accept the ``close`` record of an exchange (its full event, same ``request_id``) as
        ``submit`` does. An exchange whose open was accepted has its room kept: this never waits
        and is refused only when the writer is closed. Without an open (durability
        ``after_exchange``) it is an ordinary ``submit``."""
        event = _checked(event, CLOSE)
        with self._lock:
            kept = self._backlog.open_exchanges
            if self._state.accepting and event["request_id"] in kept:
                kept.discard(event["request_id"])
                self._add(event, None)
                return True
            return self._admit(event, None)

    def _durable(self, event: Mapping[str, Any], opens: str | None) -> Future[bool]:
        future: Future[bool] = Future()
        future.set_running_or_notify_cancel()  # a cancelled waiter must not cancel the write
        with self._lock:
            accepted = self._admit(event, future, 2 if opens else 1)
            if accepted and opens:
                self._backlog.open_exchanges.add(opens)
        if not accepted:
            future.set_result(False)
        return future

    def _admit(
        self, event: Mapping[str, Any], durable: Future[bool] | None, slots: int = 1
    ) -> bool:
        if self._must_wait(slots):
            self._room.wait_for(lambda: not self._must_wait(slots), self.settings.block_timeout)
        reason = self._refusal(durable is not None, slots)
        if reason is not None:
            state = self._state
            state.rejected += 1
            if reason != _CLOSED:
                state.refused_while_failing += bool(state.failing)
                state.ledger.refused(event, reason)
                state.work.notify()  # the gap record goes out with the next write
            return False
        self._add(event, durable)
        return True

    def _must_wait(self, slots: int) -> bool:
        return (
            self._state.accepting
            and not self._state.failing
            and not self._deny_when_full
            and not self._backlog.has_room(slots)
        )

    def _refusal(self, durable: bool, slots: int) -> str | None:
        state = self._state
        if not state.accepting:
            return _CLOSED
        room = state.backlog.has_room(slots)
        if state.failing and (durable or not room):
            return f"write_failed: {state.failing}"
        return None if room else gaps.QUEUE_FULL

    def _add(self, event: Mapping[str, Any], durable: Future[bool] | None) -> None:
        if self._backlog.add(event, durable):
            self._state.work.notify()
        self._state.submitted += 1

    def accepting(self) -> bool:
        """False when an event submitted now might not become durable: the backlog full (under
        either policy), writes failing, or the writer closed. No exchange may start then."""
        state = self._state
        return state.accepting and not state.failing and state.backlog.has_room()

    @property
    def queue_depth(self) -> int:
        """Accepted events that are not durable yet (the batch being written included)."""
        return len(self._backlog)

    @property
    def submitted(self) -> int:
        return self._state.submitted

    @property
    def written(self) -> int:
        return self._state.written

    @property
    def rejected(self) -> int:
        return self._state.rejected

    @property
    def write_errors(self) -> int:
        return self._state.write_errors

    def counters(self) -> dict[str, int]:
        """For metrics and the periodic stats log line."""
        state = self._state
        return {
            "submitted": state.submitted,
            "written": state.written,
            "rejected": state.rejected,
            "refused_while_failing": state.refused_while_failing,
            "withdrawn": state.withdrawn,
            "write_errors": state.write_errors,
            "gap_records": state.gap_records,
            "failing": int(bool(state.failing)),
            "queue_depth": len(state.backlog),
            "open_exchanges": len(state.backlog.open_exchanges),
            "unencodable": int(getattr(self._store, "unencodable", 0)),
        }

    def close(self, timeout: float = 10.0) -> int:
        """Stop accepting, write what was accepted, release the chain. Returns the number of
        accepted events that could not be written within ``timeout`` (logged as an error, and
        noted for the chain's next writer, which records them as ``lost``)."""
        state, committer = self._state, self._committer
        with state.lock:
            already = state.closing
            state.closing = True
            state.accepting = False
            state.work.notify_all()
            state.room.notify_all()
        if not already:
            atexit.unregister(self.close)
        committer.thread.join(timeout)
        if committer.thread.is_alive():  # still failing to write: give up retrying
            committer.abandon.set()
            committer.thread.join(timeout)
        unwritten = len(state.backlog)
        if committer.thread.is_alive():
            return unwritten
        for waiter in state.backlog.waiters():  # only if the thread died of a bug
            waiter.set_result(False)
        if unwritten or state.ledger:
            committer.keep_note()
            log.error(
                "audit writer closed with events not written",
                extra={"chain": self.chain, "count": unwritten},
            )
        if not already:
            self._store.close()
        return unwritten


def _checked(event: Mapping[str, Any], kind: str = "") -> Mapping[str, Any]:
    if not EVENT_FIELDS.issuperset(event):
        raise ValueError(f"audit events have no field(s) {', '.join(unknown_fields(event))}")
    if kind:
        request_id = event.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"an exchange's {kind} record needs its request_id")
        return {"time": utc_timestamp(), **event, "kind": kind}
    if "time" not in event:
        return {**event, "time": utc_timestamp()}
    return event
