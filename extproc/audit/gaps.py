"""What the trail could not take, kept until it can: refused events and failed writes.

The writer never drops an event silently. When it refuses an event (its caller got False) or a
write fails, the ledger counts it, and the next batch that is written starts with one
``recovery`` record per (cause, reason), so the gap is in the chain itself, sealed like any record:

- ``refused``: events that never entered the trail. ``reason`` is ``queue_full`` or
  ``write_failed: <errno name>`` (refused, or withdrawn unacknowledged, while writes were
  failing); ``kinds`` counts them by record kind (``open``, ``close``, ``event``), and the first
  ``MAX_IDS`` request ids are listed (ids only, as every record has them).
- ``write_failed``: a run of failed writes (``failures``, ``reason`` the errno name). Every
  accepted event was kept and written once a write worked again; the record says how long the
  trail lagged.
- ``lost``: events that were accepted but never written (only a writer that stopped while its
  writes failed leaves these; its successor records them, see ``pending``).

Each record has ``count`` or ``failures``, and ``first``/``last`` times. Not thread-safe: the
writer calls it under its lock.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.audit.event import utc_timestamp

REFUSED = "refused"
WRITE_FAILED = "write_failed"
LOST = "lost"
QUEUE_FULL = "queue_full"
MAX_IDS = 50  # request ids listed per record: enough to correlate 503s, bounded in size


@dataclass(slots=True)
class Tally:
    """One gap: what happened, why, how often, and when."""

    cause: str
    reason: str
    count: int = 0
    first: str = ""
    last: str = ""
    kinds: dict[str, int] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    more_ids: int = 0  # request ids past MAX_IDS, counted only

    def add(self, when: str, kind: str | None = None, request_id: object = None) -> None:
        self.count += 1
        self.first = min(self.first, when) if self.first else when
        self.last = max(self.last, when)
        if kind is not None:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if isinstance(request_id, str):
            if len(self.request_ids) < MAX_IDS:
                self.request_ids.append(request_id)
            else:
                self.more_ids += 1

    def merge(self, other: Tally) -> None:
        self.count += other.count
        self.first = min(self.first, other.first) if self.first else other.first
        self.last = max(self.last, other.last)
        for kind, count in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + count
        room = MAX_IDS - len(self.request_ids)
        self.request_ids.extend(other.request_ids[:room])
        self.more_ids += other.more_ids + max(0, len(other.request_ids) - room)

    def as_recovery(self) -> dict[str, Any]:
        counted = "failures" if self.cause == WRITE_FAILED else "count"
        note: dict[str, Any] = {"cause": self.cause, "reason": self.reason, counted: self.count}
        note.update(first=self.first, last=self.last)
        if self.kinds:
            note["kinds"] = dict(sorted(self.kinds.items()))
        if self.request_ids:
            note["request_ids"] = list(self.request_ids)
        if self.more_ids:
            note["more_request_ids"] = self.more_ids
        return note


class GapLedger:
    """The gaps not yet written into the chain."""

    __slots__ = ("_tallies",)

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str], Tally] = {}

    def __bool__(self) -> bool:
        return bool(self._tallies)

    def refused(self, event: Mapping[str, Any], reason: str) -> None:
        self._tally(REFUSED, reason).add(
            utc_timestamp(), str(event.get("kind", "event")), event.get("request_id")
        )

    def write_failed(self, reason: str) -> None:
        self._tally(WRITE_FAILED, reason).add(utc_timestamp())

    def take(self) -> list[Tally]:
        """Everything noted so far, to be written; hand it back with ``restore`` if the write
        fails."""
        taken = list(self._tallies.values())
        self._tallies = {}
        return taken

    def restore(self, taken: Iterable[Tally]) -> None:
        for tally in taken:
            key = (tally.cause, tally.reason)
            newer = self._tallies.get(key)
            if newer is not None:
                tally.merge(newer)  # the older tally first, so its request ids stay first
            self._tallies[key] = tally

    def snapshot(self) -> list[dict[str, Any]]:
        return [tally.as_recovery() for tally in self._tallies.values()]

    def _tally(self, cause: str, reason: str) -> Tally:
        tally = self._tallies.get((cause, reason))
        if tally is None:
            tally = self._tallies[(cause, reason)] = Tally(cause, reason)
        return tally


def records(taken: Iterable[Tally]) -> list[dict[str, Any]]:
    """The ``recovery`` records that write ``taken`` into the chain."""
    now = utc_timestamp()
    return [{"time": now, "recovery": tally.as_recovery()} for tally in taken]


def failure_reason(exc: BaseException) -> str:
    """``ENOSPC``, ``EIO``...: the errno's name, never the message (it may name paths)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return type(exc).__name__
