"""The audit writer: a bounded backlog on the request path, batched durable writes off it.

Rules (each has a test):
- ``submit`` is O(1): one uncontended lock, a bounds check and an append. It returns True once
  the event is accepted, and an accepted event is written or, if the process stops before that,
  counted and logged by ``close``: never dropped silently.
- When the backlog is full the configured policy applies: ``block`` waits up to
  ``block_timeout`` for room, ``deny`` does not wait. Either way ``submit`` returns False,
  ``rejected`` counts it, and the caller must deny its request with ``audit_unavailable``.
- One background thread takes up to ``batch_max_events`` events once that many are waiting or
  the oldest has waited ``flush_interval``, and hands them to the store, which makes them
  durable (write + fsync) before they leave the backlog. So ``queue_depth`` counts every
  accepted event that is not yet durable, and the bound holds while the disk is failing: a
  failed write is retried with backoff (``write_errors`` counts failures) and new events are
  refused by policy once the backlog is full.
- ``close`` stops accepting, writes everything accepted, and returns how many events it could
  not write (0 unless the disk kept failing past the timeout).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from extproc.audit.event import EVENT_FIELDS, as_written, unknown_fields, utc_timestamp
from extproc.audit.store import DEFAULT_ROTATE_BYTES, ChainFiles, ChainStore

log = logging.getLogger("extproc.audit")
_MAX_BACKOFF = 1.0


@dataclass(frozen=True, slots=True)
class WriterSettings:
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    batch_max_events: int = 256
    flush_interval: float = 0.05  # seconds the oldest waiting event may wait for a fuller batch
    queue_max_events: int = 10_000
    when_full: Literal["block", "deny"] = "block"
    block_timeout: float = 0.1  # seconds ``submit`` waits for room under ``block``
    capture_max_bytes: int = 0  # 0: payload capture is off and ``capture`` is never written

    def __post_init__(self) -> None:
        if min(self.rotate_bytes, self.batch_max_events, self.queue_max_events) < 1:
            raise ValueError("rotate_bytes, batch_max_events and queue_max_events must be >= 1")
        if self.flush_interval < 0 or self.block_timeout < 0 or self.capture_max_bytes < 0:
            raise ValueError("flush_interval, block_timeout and capture_max_bytes must be >= 0")
        if self.when_full not in ("block", "deny"):
            raise ValueError(f"when_full must be block or deny, got {self.when_full!r}")


class AuditWriter:
    """Writes one chain. ``AuditWriter(directory, chain, key, settings)`` writes JSONL files;
    ``AuditWriter.over(store, settings)`` writes through any ``ChainStore``."""

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
        self._backlog: deque[Mapping[str, Any]] = deque()
        self._capacity = settings.queue_max_events
        self._batch_max = settings.batch_max_events
        self._deny_when_full = settings.when_full == "deny"
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer thread waits here
        self._room = threading.Condition(self._lock)  # blocked submitters wait here
        self._accepting = True
        self._closing = False
        self._abandon = threading.Event()
        self._oldest = 0.0  # monotonic time the oldest waiting event arrived (about)
        self.submitted = 0
        self.written = 0
        self.rejected = 0
        self.write_errors = 0
        self._thread = threading.Thread(target=self._run, name=f"audit-{store.chain}", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # events accepted before exit are still written

    @property
    def chain(self) -> str:
        return self._store.chain

    # -- the request path ---------------------------------------------------------------------
    def submit(self, event: Mapping[str, Any]) -> bool:
        """Accept ``event`` for writing, or return False (full under the policy, or closed).

        The event is kept by reference until written: the caller must not change it after.
        Under ``block`` this call may wait up to ``block_timeout``; an asyncio caller that must
        never stall its loop should use ``deny`` or call it from an executor. Raises
        ``ValueError`` for a field the event model does not have: a programming error, and the
        guard that keeps body content out of the trail."""
        if not EVENT_FIELDS.issuperset(event):
            raise ValueError(f"audit events have no field(s) {', '.join(unknown_fields(event))}")
        if "time" not in event:
            event = {**event, "time": utc_timestamp()}
        with self._lock:
            backlog = self._backlog
            if len(backlog) >= self._capacity and not self._wait_for_room():
                self.rejected += 1
                return False
            if not self._accepting:
                self.rejected += 1
                return False
            if not backlog:
                self._oldest = time.monotonic()
                self._work.notify()
            backlog.append(event)
            self.submitted += 1
            if len(backlog) == self._batch_max:
                self._work.notify()
        return True

    def _wait_for_room(self) -> bool:
        if self._deny_when_full or not self._accepting:
            return False
        return self._room.wait_for(
            lambda: len(self._backlog) < self._capacity or not self._accepting,
            self.settings.block_timeout,
        )

    def accepting(self) -> bool:
        """False when ``submit`` would fail at once: closed, or full under ``deny``."""
        return self._accepting and not (
            self._deny_when_full and len(self._backlog) >= self._capacity
        )

    @property
    def queue_depth(self) -> int:
        """Accepted events that are not durable yet (the batch being written included)."""
        return len(self._backlog)

    def counters(self) -> dict[str, int]:
        """For metrics and the periodic stats log line."""
        return {
            "submitted": self.submitted,
            "written": self.written,
            "rejected": self.rejected,
            "write_errors": self.write_errors,
            "queue_depth": len(self._backlog),
            "unencodable": int(getattr(self._store, "unencodable", 0)),
        }

    def close(self, timeout: float = 10.0) -> int:
        """Stop accepting, write what was accepted, release the chain. Returns the number of
        accepted events that could not be written within ``timeout`` (logged as an error)."""
        with self._lock:
            already = self._closing
            self._closing = True
            self._accepting = False
            self._work.notify_all()
            self._room.notify_all()
        if not already:
            atexit.unregister(self.close)
        self._thread.join(timeout)
        if self._thread.is_alive():  # still failing to write: give up retrying
            self._abandon.set()
            self._thread.join(timeout)
        unwritten = len(self._backlog)
        if unwritten:
            log.error(
                "audit writer closed with events not written",
                extra={"chain": self.chain, "count": unwritten},
            )
        if not already and not self._thread.is_alive():
            self._store.close()
        return unwritten

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if not self._write(batch):
                    return
        except BaseException:
            log.exception("audit writer stopped", extra={"chain": self.chain})
            raise
        finally:
            with self._lock:  # whatever happened, nobody may keep submitting into a dead queue
                self._accepting = False
                self._room.notify_all()

    def _next_batch(self) -> list[Mapping[str, Any]] | None:
        with self._lock:
            while not self._backlog:
                if self._closing:
                    return None
                self._work.wait()
            if len(self._backlog) < self._batch_max and not self._closing:
                deadline = self._oldest + self.settings.flush_interval
                while len(self._backlog) < self._batch_max and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._work.wait(remaining)
            return list(itertools.islice(self._backlog, self._batch_max))

    def _write(self, batch: list[Mapping[str, Any]]) -> bool:
        """Make ``batch`` durable, retrying with backoff; False when ``close`` gave up."""
        events = [as_written(event, self.settings.capture_max_bytes) for event in batch]
        backoff = 0.05
        first_failure = True
        while True:
            try:
                self._store.append(events)
                break
            except Exception as exc:
                self.write_errors += 1
                log.error(
                    "audit write failed; the events stay queued and are retried",
                    exc_info=first_failure,
                    extra={"chain": self.chain, "reason": str(exc), "queued": len(self._backlog)},
                )
                if self._abandon.wait(backoff):
                    return False
                first_failure = False
                backoff = min(backoff * 2, _MAX_BACKOFF)
        with self._lock:
            for _ in batch:
                self._backlog.popleft()
            self.written += len(batch)
            self._room.notify(len(batch))
            if self._backlog:
                self._oldest = time.monotonic()
        return True
