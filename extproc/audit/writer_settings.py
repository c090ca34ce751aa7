"""How an audit writer batches, bounds and commits (``WriterSettings``), checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WriterSettings:
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    batch_max_events: int = 256
    flush_interval: float = 0.05  # seconds the oldest waiting event may wait for a fuller batch
    queue_max_events: int = 10_000
    when_full: Literal["block", "deny"] = "block"
    block_timeout: float = 0.1  # seconds ``submit`` waits for room under ``block``
    capture_max_bytes: int = 0  # 0: payload capture is off and ``capture`` is never written
    # Seconds an event a caller waits for (``submit_durable``, ``open_exchange``) waits for
    # others to share its write and fsync (group commit). 0 writes at once, and events that
    # arrive during a write still share the next one: measured, that groups as well as 1-2 ms
    # windows at every rate tried, without adding the window to each wait (bench/RESULTS.md).
    # A window saves fsyncs at moderate rates, for disks that are short of IOPS.
    commit_window: float = 0.0

    def __post_init__(self) -> None:
        if min(self.rotate_bytes, self.batch_max_events, self.queue_max_events) < 1:
            raise ValueError("rotate_bytes, batch_max_events and queue_max_events must be >= 1")
        if min(self.flush_interval, self.block_timeout, self.capture_max_bytes) < 0:
            raise ValueError("flush_interval, block_timeout and capture_max_bytes must be >= 0")
        if not 0 <= self.commit_window <= 1:
            raise ValueError(f"commit_window must be 0..1 seconds, got {self.commit_window!r}")
        if self.when_full not in ("block", "deny"):
            raise ValueError(f"when_full must be block or deny, got {self.when_full!r}")
