"""The exchange records: an ``open`` written before a request may reach the model, a ``close``
when the exchange ends, and how ``verify`` pairs them.

The writer stamps ``kind`` (a record field no event may carry):

- ``open``: the request's ids (``request_id``, ``decision_id``...), made durable before the
  processor forwards the request (durability ``before_forward``);
- ``close``: the full event of the exchange, with the same ``request_id``;
- ``start``, ``stop``: chain records around one writer's exchange records. ``start`` precedes
  the first exchange record of a writer's run, ``stop`` follows its last when it closes cleanly.
  They tell verify where a writer's life ended, so an open it never closed is known to stay open.

``ExchangeBook`` is verify's bookkeeping for one chain. Closes without an open are counted, not
listed: a processor that writes only when the exchange ends (``after_exchange``) writes no opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN = "open"
CLOSE = "close"
START = "start"
STOP = "stop"
EXCHANGE_KINDS = frozenset({OPEN, CLOSE})
WRITER_KINDS = frozenset({START, STOP})  # chain records, not events
MAX_LISTED = 20  # unclosed exchanges listed one per line per group; the rest are counted


@dataclass(frozen=True, slots=True)
class OpenedAt:
    request_id: str
    where: str  # "<file>:<line>"
    seq: int
    time: str


@dataclass(slots=True)
class ExchangeBook:
    """Opens waiting for their close, in one chain, and what became of the ones that never
    got it."""

    opened: int = 0
    closed: int = 0
    closes_without_open: int = 0
    duplicate_opens: int = 0
    waiting: dict[str, OpenedAt] = field(default_factory=dict)
    never_closed: list[OpenedAt] = field(default_factory=list)  # their writer stopped first

    def open(self, at: OpenedAt) -> None:
        self.opened += 1
        if at.request_id in self.waiting:
            self.duplicate_opens += 1
        self.waiting[at.request_id] = at

    def close(self, request_id: str) -> None:
        self.closed += 1
        if self.waiting.pop(request_id, None) is None:
            self.closes_without_open += 1

    def writer_stopped(self) -> None:
        """The writer of the waiting opens is gone (a later start, a stop, or a restart's
        recovery record): no close can follow them any more."""
        self.never_closed.extend(self.waiting.values())
        self.waiting.clear()

    def notes(self) -> list[str]:
        """Warnings for exchanges never closed, notes for the ones open at the chain's end."""
        lines = _listed(
            self.never_closed,
            "warning: exchange {id} opened at {where} (seq {seq}, {time}), never closed: the "
            "worker stopped (the request may have reached the model; its outcome is not "
            "recorded)",
            "warning: {more} more exchanges opened, never closed: the worker stopped",
        )
        lines += _listed(
            list(self.waiting.values()),
            "open at end of chain: exchange {id} opened at {where} (seq {seq}, {time}), not "
            "closed yet (in progress, or its worker was killed and has not restarted)",
            "open at end of chain: {more} more exchanges",
        )
        if self.closes_without_open:
            lines.append(
                f"{self.closes_without_open} closing records have no opening record (exchanges "
                "recorded when they ended: durability after_exchange)"
            )
        if self.duplicate_opens:
            lines.append(f"warning: {self.duplicate_opens} request ids were opened twice")
        return lines


def _listed(found: list[OpenedAt], line: str, rest: str) -> list[str]:
    lines = [
        line.format(id=at.request_id, where=at.where, seq=at.seq, time=at.time)
        for at in found[:MAX_LISTED]
    ]
    if len(found) > MAX_LISTED:
        lines.append(rest.format(more=len(found) - MAX_LISTED))
    return lines
