"""The writer's background thread: takes batches from the backlog, makes them durable through the
store (group commit), and turns failed writes into gaps instead of losses.

- A batch goes once ``batch_max_events`` wait, the oldest has waited ``flush_interval``, or one
  a caller waits for has waited ``commit_window``; the gap records noted since the last write
  lead it (see ``gaps``), and the first exchange record of this writer is preceded by ``start``.
- Entries leave the backlog only once the store has made them durable; then the callers waiting
  for them are told True.
- A failed write is retried with backoff (the gap records with it, so a write that only carries
  them probes whether the disk works again). Until one works, the writer counts as failing: the
  callers waiting for durability are told False at once and their entries withdrawn (counted as
  refused), the other entries stay, and the next writer of the chain is left a note of all this
  in case this one stops first (see ``pending``).
- A clean close writes ``stop`` after the last exchange record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.audit import gaps
from extproc.audit.backlog import Backlog, Entry
from extproc.audit.event import as_written, utc_timestamp
from extproc.audit.exchanges import EXCHANGE_KINDS, START, STOP
from extproc.audit.pending import NoteKeeper
from extproc.audit.store import ChainStore, LaterHead
from extproc.audit.writer_settings import WriterSettings

log = logging.getLogger("extproc.audit")
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
_HEAD_DUE: tuple[list[Entry], list[gaps.Tally]] = ([], [])  # compared by identity


@dataclass(eq=False, slots=True)
class WriterState:
    """What the request path and the writer thread share; every field is guarded by ``lock``
    (the flags are also read without it, where a stale answer is harmless)."""

    backlog: Backlog
    ledger: gaps.GapLedger = field(default_factory=gaps.GapLedger)
    lock: threading.Lock = field(default_factory=threading.Lock)
    work: threading.Condition = field(init=False)  # the writer thread waits here
    room: threading.Condition = field(init=False)  # blocked submitters wait here
    accepting: bool = True
    closing: bool = False
    failing: str = ""  # the last write error's errno name while writes fail, else ""
    submitted: int = 0
    written: int = 0
    rejected: int = 0
    refused_while_failing: int = 0
    withdrawn: int = 0
    write_errors: int = 0
    gap_records: int = 0

    def __post_init__(self) -> None:
        self.work = threading.Condition(self.lock)
        self.room = threading.Condition(self.lock)


class Committer:
    """The one thread that writes a chain through its store."""

    def __init__(self, store: ChainStore, settings: WriterSettings, state: WriterState) -> None:
        self._store = store
        self._settings = settings
        self._state = state
        self._notes = store if isinstance(store, NoteKeeper) else None
        self._head = store if isinstance(store, LaterHead) else None
        if self._head is not None:
            self._head.defer_head()  # written after the waiting callers are told, not before
        self._noted = False  # a note for the next writer is kept
        self._begun = False  # this writer has written its ``start`` record
        self.abandon = threading.Event()  # set by ``close`` to stop retrying
        self.thread = threading.Thread(target=self._run, name=f"audit-{store.chain}", daemon=True)

    def _run(self) -> None:
        state = self._state
        backoff = _FIRST_BACKOFF
        try:
            while (work := self._next_batch()) is not None:
                if work is _HEAD_DUE:
                    assert self._head is not None
                    self._head.update_head(now=True)
                    continue
                if self._write(*work):
                    backoff = _FIRST_BACKOFF
                    continue
                if self.abandon.wait(backoff):
                    return
                backoff = min(backoff * 2, _MAX_BACKOFF)
            if self._begun:
                self._write([], [], STOP)
        except BaseException:
            log.exception("audit writer stopped", extra={"chain": self._store.chain})
            raise
        finally:
            with state.lock:  # whatever happened, nobody may keep submitting into a dead queue
                state.accepting = False
                state.room.notify_all()

    def _next_batch(self) -> tuple[list[Entry], list[gaps.Tally]] | None:
        """The next batch to write; ``_HEAD_DUE`` when the writer fell idle with a lagging head
        (written once the head interval is up, so a quiet chain's head names its last record);
        None once closing with nothing left."""
        state, settings = self._state, self._settings
        with state.lock:
            backlog = state.backlog
            while not backlog and not state.ledger:
                if state.closing:
                    return None
                head_due_in = self._head.head_due_in() if self._head is not None else None
                if head_due_in is None:
                    state.work.wait()
                    continue
                timed_out = head_due_in <= 0 or not state.work.wait(head_due_in)
                if timed_out and not backlog and not state.ledger and not state.closing:
                    return _HEAD_DUE
            while backlog and len(backlog) < settings.batch_max_events and not state.closing:
                deadline = backlog.deadline(settings.flush_interval, settings.commit_window)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                state.work.wait(remaining)
            return backlog.first(settings.batch_max_events), state.ledger.take()

    def _write(self, batch: list[Entry], taken: list[gaps.Tally], marker: str = "") -> bool:
        """One attempt to make ``batch`` durable, after the gap records of ``taken``."""
        state = self._state
        begins = not self._begun and any(event.get("kind") in EXCHANGE_KINDS for event, _ in batch)
        records: list[Mapping[str, Any]] = []
        if begins:
            records.append({"time": utc_timestamp(), "kind": START})
        records += gaps.records(taken)
        records += [as_written(event, self._settings.capture_max_bytes) for event, _ in batch]
        if marker:
            records.append({"time": utc_timestamp(), "kind": marker})
        try:
            self._store.append(records)
        except Exception as exc:
            self._failed(exc, taken)
            return False
        with state.lock:
            done = state.backlog.written(len(batch), time.monotonic())
            state.written += len(batch)
            state.gap_records += len(taken)
            recovered, state.failing = state.failing, ""
            state.room.notify_all()
        self._begun = self._begun or begins
        for _event, durable in done:
            if durable is not None:
                durable.set_result(True)
        if self._head is not None:
            self._head.update_head()
        if self._noted and self._notes is not None:
            self._notes.clear_note()  # its gaps are in the chain now
            self._noted = False
        if recovered:
            log.warning("audit writes work again", extra={"chain": self._store.chain})
        return True

    def _failed(self, exc: Exception, taken: list[gaps.Tally]) -> None:
        state = self._state
        reason = gaps.failure_reason(exc)
        with state.lock:
            state.write_errors += 1
            first = not state.failing
            state.failing = reason
            state.ledger.restore(taken)
            state.ledger.write_failed(reason)
            withdrawn = state.backlog.withdraw_durable()
            for event, _durable in withdrawn:
                state.ledger.refused(event, f"write_failed: {reason}")
            state.withdrawn += len(withdrawn)
            state.room.notify_all()  # blocked submitters stop waiting: refused while failing
            queued = len(state.backlog)
        for _event, durable in withdrawn:
            if durable is not None:
                durable.set_result(False)
        log.error(
            "audit write failed; new exchanges are refused until a write works again",
            exc_info=first,
            extra={"chain": self._store.chain, "reason": reason, "queued": queued},
        )
        self.keep_note()

    def keep_note(self) -> None:
        """Tell the chain's next writer what this one has not written yet. Called by this
        thread, or by ``close`` once it has ended: the store is never used by two threads."""
        if self._notes is None:
            return
        state = self._state
        with state.lock:
            oldest, newest = state.backlog.event_times()
            note = {
                "gaps": state.ledger.snapshot(),
                "unwritten": len(state.backlog),
                "first": oldest,
                "last": newest,
                "reason": state.failing,  # "" when the writer stopped for another cause
            }
        self._notes.keep_note(note)
        self._noted = True
