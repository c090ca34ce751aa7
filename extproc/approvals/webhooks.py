"""Webhook deliveries, off every request's path: a bounded schedule and a few sender threads.

``submit`` never blocks and never fails: it schedules one delivery per webhook whose filter
takes the event, or counts and logs a drop when ``queue_max`` deliveries are already waiting.
Senders post each delivery (signed afresh on every attempt, so its time stays current); a
failure (a connection error, a timeout, any status but 2xx) is retried after a backoff that
doubles from ``backoff`` up to ``backoff_max``, ``attempts`` times in all, then dropped, counted
and logged. A hanging receiver holds one sender for its ``timeout``, never a caller. Redirects
are not followed (a delivery goes where it was configured to, or fails). Several senders work at
once, so deliveries may arrive out of order: the body's ``version`` orders them, and
``x-extproc-delivery`` (approval id and version) lets a receiver drop a repeat. Logs name a
webhook by scheme and host only: its path may hold a token.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from extproc.approval.config import WebhookSettings
from extproc.approval.model import Approval, EventKind
from extproc.approval.notice import SIGNATURE_HEADER, notice_body, sign

log = logging.getLogger("extproc.approvals")
# url, body, headers, timeout -> HTTP status (raises OSError when nothing answered)
Post = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = parts.path or "/"
        connection.request(
            "POST", f"{target}?{parts.query}" if parts.query else target, body, headers
        )
        response = connection.getresponse()
        response.read(64 * 1024)  # drain a little, so the connection closes cleanly
        return response.status
    finally:
        connection.close()


@dataclass(order=True, slots=True)
class _Delivery:
    due: float
    seq: int
    hook: WebhookSettings = field(compare=False)
    kind: EventKind = field(compare=False)
    delivery_id: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(default=0, compare=False)


class WebhookNotifier:
    def __init__(
        self,
        hooks: Sequence[WebhookSettings],
        *,
        queue_max: int = 1000,
        attempts: int = 6,
        backoff: float = 0.5,
        backoff_max: float = 60.0,
        senders: int = 4,
        post: Post = http_post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hooks = tuple(hooks)
        self._queue_max = queue_max
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._post = post
        self._clock = clock
        self._schedule: list[_Delivery] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._closing = False
        self._in_flight = 0
        self.counts = {"submitted": 0, "delivered": 0, "retried": 0, "failed": 0, "dropped": 0}
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"webhooks-{i}", daemon=True)
            for i in range(senders if self._hooks else 0)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, kind: EventKind, approval: Approval, *, version: int, time: str) -> int:
        """Schedule the event for every webhook that wants it; returns how many were accepted."""
        accepted = 0
        for hook in self._hooks:
            if kind not in hook.events:
                continue
            body = notice_body(kind, approval, version=version, time=time, fmt=hook.format)
            with self._ready:
                if self._closing or len(self._schedule) + self._in_flight >= self._queue_max:
                    self.counts["dropped"] += 1
                    log.error(
                        "webhook queue full; notification dropped",
                        extra={"webhook": hook.shown, "event": kind, "approval_id": approval.id},
                    )
                    continue
                delivery_id = f"{approval.id}.{version}"
                heapq.heappush(
                    self._schedule,
                    _Delivery(time_now(), next(self._seq), hook, kind, delivery_id, body),
                )
                self.counts["submitted"] += 1
                self._ready.notify()
            accepted += 1
        return accepted

    def pending(self) -> int:
        with self._ready:
            return len(self._schedule) + self._in_flight

    def close(self, timeout: float = 0.0) -> None:
        """Stop taking events; senders finish what is due and exit. Waits up to ``timeout``
        (0: not at all, so a caller on an event loop never blocks)."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()) if timeout else 0.0)

    # -- senders ---------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            with self._ready:
                delivery = self._next_due()
                if delivery is None:
                    return
                self._in_flight += 1
            try:
                self._attempt(delivery)
            finally:
                with self._ready:
                    self._in_flight -= 1

    def _next_due(self) -> _Delivery | None:
        """The next delivery whose time has come (waiting for it), or None once closing and
        nothing is due. Called with the condition held."""
        while True:
            now = time_now()
            if self._schedule and self._schedule[0].due <= now:
                return heapq.heappop(self._schedule)
            if self._closing:
                if self._schedule:  # retries not yet due: abandoned, never silently
                    self.counts["dropped"] += len(self._schedule)
                    log.error(
                        "webhook retries abandoned at close",
                        extra={"deliveries": len(self._schedule)},
                    )
                    self._schedule.clear()
                return None
            wait = self._schedule[0].due - now if self._schedule else None
            self._ready.wait(wait)

    def _attempt(self, delivery: _Delivery) -> None:
        hook = delivery.hook
        headers = {
            "content-type": "application/json",
            "user-agent": "extproc-approvals",
            "x-extproc-event": delivery.kind,
            "x-extproc-delivery": delivery.delivery_id,
        }
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(delivery.body, hook.secret, int(self._clock()))
        try:
            status = self._post(hook.url, delivery.body, headers, hook.timeout_seconds)
            problem = None if 200 <= status < 300 else f"status {status}"
        except (OSError, http.client.HTTPException) as exc:
            problem = type(exc).__name__
        if problem is None:
            with self._ready:
                self.counts["delivered"] += 1
            return
        delivery.attempt += 1
        extra = {"webhook": hook.shown, "event": delivery.kind, "attempt": delivery.attempt}
        if delivery.attempt >= self._attempts:
            with self._ready:
                self.counts["failed"] += 1
            log.error("webhook delivery failed; giving up", extra={**extra, "problem": problem})
            return
        delay = min(self._backoff_max, self._backoff * 2 ** (delivery.attempt - 1))
        log.warning("webhook delivery failed; will retry", extra={**extra, "problem": problem})
        with self._ready:
            self.counts["retried"] += 1
            delivery.due = time_now() + delay
            heapq.heappush(self._schedule, delivery)
            self._ready.notify()


def time_now() -> float:
    """The schedule's clock: monotonic, so a wall-clock step never delays or rushes a retry."""
    return time.monotonic()
