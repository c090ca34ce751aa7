"""The worker supervisor: degrade, never collapse.

Rules (each has a test):
- A worker that exits is restarted after a backoff that doubles with each quick failure
  (``BACKOFF_FIRST`` up to ``BACKOFF_MAX``); one that had run for ``STABLE_AFTER`` seconds
  starts again from the first step.
- A restarted worker gets the last config that validated, never a bad file on disk: before
  each restart the file is validated again; if it fails, the last good content is used (and the
  log says why). The worker then reloads from disk only once the file changes and validates.
- The last good config is the newest one the running workers may have reloaded: the supervisor
  validates the file whenever it changes (``config_changed``), not only at restarts, so a worker
  restarted while a bad file is on disk never serves an older policy than its siblings.
- A sibling's failures never stop a healthy worker. The service runs as long as one worker can.
- The supervisor gives up (exit 1) only when every worker is down and each has failed
  ``GIVE_UP_AFTER`` times in a row without ever running ``STABLE_AFTER`` seconds: nothing can
  serve (a port taken, a database that cannot open), and an operator must look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("extproc.server")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0
GIVE_UP_AFTER = 5


class Worker(Protocol):
    """A started worker process (``multiprocessing`` process, or a test's fake)."""

    @property
    def exitcode(self) -> int | None: ...

    @property
    def pid(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


@dataclass(slots=True)
class _Slot:
    index: int
    worker: Worker
    started_at: float
    failures: int = 0  # quick failures in a row
    ever_stable: bool = False
    restart_at: float | None = None


class Supervisor:
    """``start(index, config)`` starts worker ``index`` with the config content ``config``;
    ``validate()`` returns the content of the config on disk if it validates, else None."""

    def __init__(
        self,
        workers: int,
        config: bytes,
        start: Callable[[int, bytes], Worker],
        validate: Callable[[], bytes | None],
        clock: Callable[[], float],
        on_exit: Callable[[Worker], None] | None = None,
    ) -> None:
        self.last_good = config
        self._on_exit = on_exit
        self._start = start
        self._validate = validate
        self._clock = clock
        now = clock()
        self._slots = [_Slot(i, start(i, config), now) for i in range(workers)]

    @property
    def workers(self) -> list[Worker]:
        return [slot.worker for slot in self._slots]

    def alive(self) -> int:
        return sum(1 for slot in self._slots if slot.worker.is_alive())

    def tick(self) -> bool:
        """Restart what is due. Returns False when the supervisor gives up."""
        now = self._clock()
        for slot in self._slots:
            if slot.worker.is_alive():
                if not slot.ever_stable and now - slot.started_at >= STABLE_AFTER:
                    slot.ever_stable = True
                continue
            if slot.restart_at is None:
                self._schedule(slot, now)
            if slot.restart_at is not None and now >= slot.restart_at:
                self._restart(slot, now)
        return not self._hopeless()

    def config_changed(self) -> None:
        """The config file changed on disk: keep its content if it validates."""
        fresh = self._validate()
        if fresh is not None:
            self.last_good = fresh

    def _schedule(self, slot: _Slot, now: float) -> None:
        if self._on_exit is not None:
            self._on_exit(slot.worker)
        ran = now - slot.started_at
        if ran >= STABLE_AFTER:
            slot.failures = 0
            slot.ever_stable = True
        slot.failures += 1
        delay = min(BACKOFF_FIRST * 2 ** (slot.failures - 1), BACKOFF_MAX)
        slot.restart_at = now + delay
        log.warning(
            "worker exited; restarting",
            extra={
                "worker": slot.index,
                "exit_code": slot.worker.exitcode,
                "ran_seconds": round(ran, 3),
                "restart_in_seconds": delay,
                "alive": self.alive(),
            },
        )

    def _restart(self, slot: _Slot, now: float) -> None:
        fresh = self._validate()
        if fresh is None:
            log.error(
                "the config on disk is invalid; the worker restarts with the last good one",
                extra={"worker": slot.index},
            )
        else:
            self.last_good = fresh
        slot.worker = self._start(slot.index, self.last_good)
        slot.started_at = now
        slot.restart_at = None

    def _hopeless(self) -> bool:
        return all(
            not slot.worker.is_alive() and not slot.ever_stable and slot.failures >= GIVE_UP_AFTER
            for slot in self._slots
        )
