"""The audit writers of one process, one per chain, kept across config reloads.

A writer owns its chain's lock, so a reload must not open a second one: a reload's new audit
settings apply at restart. The composition root makes one ``AuditSinks`` per worker process and
hands it to every runtime it builds; nothing here is global.
"""

from __future__ import annotations

import threading

from extproc.audit.config import AuditConfig
from extproc.audit.recording_files import RecordingStore
from extproc.audit.writer import AuditWriter


class AuditSinks:
    def __init__(self) -> None:
        self._writers: dict[tuple[str, str], AuditWriter] = {}
        self._recordings: dict[str, RecordingStore] = {}
        self._lock = threading.Lock()

    def writer_for(self, config: AuditConfig, chain: str) -> AuditWriter:
        key = (str(config.directory.resolve()), chain)
        with self._lock:
            writer = self._writers.get(key)
            if writer is None:
                writer = AuditWriter(config.directory, chain, config.key, config.writer)
                self._writers[key] = writer
            return writer

    def recordings_for(self, config: AuditConfig) -> RecordingStore | None:
        """The directory's recording store, when recording is on; its retention runs on a
        thread of this process. A reload's new limits apply to the store already running."""
        if not config.recording.enabled:
            return None
        key = str(config.directory.resolve())
        with self._lock:
            store = self._recordings.get(key)
            if store is None:
                store = RecordingStore(config.directory, config.key, config.recording)
                self._recordings[key] = store
                store.start_retention()
            store.config = config.recording
            return store

    def close_all(self) -> None:
        """Flush every accepted event, then close (at process stop)."""
        with self._lock:
            for store in self._recordings.values():
                store.close()  # recordings first: their events may still be on their way
            self._recordings.clear()
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per chain (submitted, written, rejected, write_errors, queue_depth, ...)."""
        with self._lock:
            return {chain: w.counters() for (_directory, chain), w in self._writers.items()}
