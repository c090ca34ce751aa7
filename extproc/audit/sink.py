"""One audit writer per chain per process, kept across config reloads (a writer owns its chain's
lock; a reload must not open a second one, so a reload's new audit settings apply at restart)."""

from __future__ import annotations

import logging
import threading

from extproc.audit.config import AuditConfig
from extproc.audit.writer import AuditWriter

log = logging.getLogger("extproc.audit")
_writers: dict[tuple[str, str], AuditWriter] = {}
_lock = threading.Lock()


def writer_for(config: AuditConfig, chain: str) -> AuditWriter:
    key = (str(config.directory.resolve()), chain)
    with _lock:
        writer = _writers.get(key)
        if writer is None:
            writer = AuditWriter(config.directory, chain, config.key, config.writer)
            _writers[key] = writer
        return writer


def close_all() -> None:
    with _lock:
        for writer in _writers.values():
            writer.close()
        _writers.clear()


def stats() -> dict[str, dict[str, int]]:
    """Counters per chain (submitted, written, rejected, write_errors, queue_depth,
    unencodable)."""
    with _lock:
        return {chain: w.counters() for (_directory, chain), w in _writers.items()}
