"""Time as the core sees it: passed in, never read from a global, so tests can fix it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Clock:
    """``wall`` gives seconds since the epoch (for timestamps), ``monotonic`` seconds that never
    go back (for durations)."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    def timestamp(self) -> str:
        """RFC 3339 in UTC with microseconds and a ``Z``: sortable as text."""
        moment = datetime.fromtimestamp(self.wall(), UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


SYSTEM_CLOCK = Clock()
