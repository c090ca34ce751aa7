"""Hot reload: one immutable runtime at a time, swapped atomically when its files change.

A new runtime is built completely (config validated, database opened, keys fetched) before it
replaces the serving one; if building fails, the last good runtime keeps serving and the reason
is logged. Requests in flight keep the runtime they started with.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from extproc import metrics

log = logging.getLogger("extproc.reload")


class Runtime(Protocol):
    def watched_files(self) -> Sequence[Path]: ...

    def close(self) -> None: ...


R = TypeVar("R", bound=Runtime)


def _fingerprint(paths: Sequence[Path]) -> str:
    """Identity and modification time of each file, not its content: a GeoIP City database is
    tens of MB and is polled every second."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        except OSError as exc:
            digest.update(f"unreadable:{path}:{exc.errno}".encode())
    return digest.hexdigest()


class RuntimeHolder(Generic[R]):
    def __init__(
        self, runtime: R, build: Callable[[], R], on_swap: Callable[[R, R], None] | None = None
    ) -> None:
        self.current = runtime
        self._build = build
        self._on_swap = on_swap
        self._fingerprint = _fingerprint(runtime.watched_files())
        self.reloads = 0
        self.failed_reloads = 0

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the watched files; rebuild when their content changes."""
        while True:
            await asyncio.sleep(interval)
            await self.check_once()

    async def check_once(self) -> bool:
        """Reload if the watched files changed. Returns True when a new runtime now serves."""
        files = self.current.watched_files()
        fingerprint = await asyncio.to_thread(_fingerprint, files)
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            fresh = await asyncio.to_thread(self._build)
        except Exception as exc:
            self.failed_reloads += 1
            metrics.CONFIG_RELOADS.labels("failed").inc()
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            log.error(
                "config reload failed; the last good config keeps serving", extra={"reason": reason}
            )
            return False
        old, self.current = self.current, fresh
        self.reloads += 1
        metrics.CONFIG_RELOADS.labels("ok").inc()
        if self._on_swap is not None:
            self._on_swap(old, fresh)
        log.info("config reloaded", extra={"files": [str(p) for p in files]})
        # Requests in flight may still hold the old runtime; close it after they finish.
        asyncio.get_running_loop().call_later(30.0, old.close)
        return True
