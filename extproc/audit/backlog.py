"""The writer's backlog: accepted events that are not durable yet, in order, with room kept for
the closing records of the exchanges that are open. Not thread-safe: the writer holds its lock.

Room: an event takes one slot until it is durable, and an open exchange keeps one more slot for
its close from the moment its open is accepted. So a close never finds the backlog full, and the
bound (``capacity``) holds for events and kept slots together.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from extproc.audit.exchanges import OPEN

# (event, durable): ``durable`` is the Future of a caller that waits for durability (True once
# written, False if withdrawn), None for the others. A plain tuple: ``submit`` builds one per
# event, and a NamedTuple would cost it a third of its time.
Entry = tuple[Mapping[str, Any], "Future[bool] | None"]


class Backlog:
    __slots__ = (
        "_entries", "batch_max", "capacity", "durable_since", "oldest", "open_exchanges",
        "waiting",
    )  # fmt: skip

    def __init__(self, capacity: int, batch_max: int) -> None:
        self._entries: deque[Entry] = deque()
        self.capacity = capacity
        self.batch_max = batch_max
        self.open_exchanges: set[str] = set()  # request ids whose close has a slot kept
        self.waiting = 0  # entries whose caller waits for durability
        self.oldest = 0.0  # monotonic time the oldest entry arrived (about: see ``written``)
        self.durable_since = 0.0  # the same for the oldest entry a caller waits for

    def __len__(self) -> int:
        return len(self._entries)

    def has_room(self, slots: int = 1) -> bool:
        return len(self._entries) + len(self.open_exchanges) + slots <= self.capacity

    def add(self, event: Mapping[str, Any], durable: Future[bool] | None = None) -> bool:
        """Append (the caller checked the room); True when the writer thread should look again
        at its deadline: the first entry, a full batch, or the first entry a caller waits for."""
        entries = self._entries
        if entries:
            wake = len(entries) + 1 == self.batch_max
        else:
            self.oldest = time.monotonic()
            wake = True
        entries.append((event, durable))
        if durable is not None:
            self.waiting += 1
            if self.waiting == 1:
                self.durable_since = time.monotonic()
                wake = True
        return wake

    def deadline(self, flush_interval: float, commit_window: float) -> float:
        """When the next batch must go: the oldest entry's flush interval, or sooner the commit
        window of the oldest entry a caller waits for (group commit)."""
        deadline = self.oldest + flush_interval
        if self.waiting:
            deadline = min(deadline, self.durable_since + commit_window)
        return deadline

    def first(self, count: int) -> list[Entry]:
        return list(itertools.islice(self._entries, count))

    def written(self, count: int, now: float) -> list[Entry]:
        """Remove the first ``count`` entries, now durable."""
        done = [self._entries.popleft() for _ in range(count)]
        self.waiting -= sum(durable is not None for _event, durable in done)
        if self._entries:
            self.oldest = now
            # Callers still waiting have waited through a whole write: the next batch goes at once.
            self.durable_since = 0.0
        return done

    def withdraw_durable(self) -> list[Entry]:
        """Remove the entries whose callers wait for durability (their writes are failing: the
        callers are told False at once instead of waiting through retries), and free the slots
        their opens kept."""
        if not self.waiting:
            return []
        kept: deque[Entry] = deque()
        withdrawn: list[Entry] = []
        for entry in self._entries:
            (kept if entry[1] is None else withdrawn).append(entry)
        self._entries = kept
        self.waiting = 0
        for event, _durable in withdrawn:
            if event.get("kind") == OPEN:
                self.open_exchanges.discard(str(event.get("request_id")))
        return withdrawn

    def event_times(self) -> tuple[str, str]:
        """(oldest, newest) submission time of the entries, for a note about them."""
        if not self._entries:
            return "", ""
        return str(self._entries[0][0].get("time", "")), str(self._entries[-1][0].get("time", ""))

    def waiters(self) -> list[Future[bool]]:
        return [durable for _event, durable in self._entries if durable is not None]
