"""Session recordings on disk: writing them off the event loop, retention, and what verify and
replay read back (see ``extproc.audit.recording`` for what a recording is).

- ``RecordingStore.save`` serialises a recording, writes it to a temporary name, fsyncs it and
  renames it into place on its own small thread pool, and answers the ``recording`` field of the
  closing audit event: ``{"file", "sha256", "bytes", "truncated"}``, or ``{"error": ...}`` when
  it could not be written (a full disk, too many recordings waiting). The audit event is never
  held back by a failed recording: the failure is in the event itself, logged and counted.
- Retention (``prune``) removes recordings older than ``max_age`` and then, oldest first, beyond
  ``max_total_bytes``. Before it removes a file it appends a signed line (file, SHA-256, why) to
  ``recordings/expired.jsonl`` and fsyncs it, so verify tells a removal by retention from a
  deletion: a missing recording without a signed expiry line for its exact digest is a problem.
  One process prunes at a time (a lock file); the others skip that round.
- ``check_recordings`` (verify) compares each recording an event names with its digest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from extproc.audit.chain import RecordError, Sealer
from extproc.audit.event import utc_timestamp
from extproc.audit.files import fsync_directory
from extproc.audit.recording import (
    EXPIRY_LOG,
    RECORDINGS_DIRECTORY,
    RecordingConfig,
    digest,
    is_recording_name,
    recording_name,
    started_at_of,
)

log = logging.getLogger("extproc.audit.recordings")
MAX_WAITING = 256  # recordings accepted and not yet written; past it one is skipped, visibly
_LOCK_NAME = ".retention.lock"


@dataclass(slots=True)
class Pruned:
    """What one retention round removed (``busy``: another process was pruning)."""

    by_age: int = 0
    by_size: int = 0
    bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    busy: bool = False


class RecordingStore:
    """Writes one audit directory's recordings; shared by the runtimes of one process."""

    def __init__(self, directory: Path, key: bytes, config: RecordingConfig) -> None:
        self.directory = directory
        self.root = directory / RECORDINGS_DIRECTORY
        self.config = config  # replaced on a config reload (the retention limits apply then)
        self._sealer = Sealer(key)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="extproc-recordings")
        self._waiting = 0
        self._lock = threading.Lock()
        self._names = threading.Lock()  # choosing a free file name, and taking it
        self._stop = threading.Event()
        self._retention: threading.Thread | None = None
        self.failures = 0

    # -- writing ----------------------------------------------------------------------------------
    def save(self, document: Mapping[str, Any], chain: str) -> Future[dict[str, Any]]:
        """Write ``document`` off the caller's thread; the future holds the event's
        ``recording`` field (never raises)."""
        with self._lock:
            full = self._waiting >= MAX_WAITING
            if not full:
                self._waiting += 1
        if full:
            return _done(self._failed("backlog_full"))
        try:
            return self._pool.submit(self._save, document, chain)
        except RuntimeError:  # the process is stopping: its pool takes no more work
            with self._lock:
                self._waiting -= 1
            return _done(self._failed("closed"))

    def _save(self, document: Mapping[str, Any], chain: str) -> dict[str, Any]:
        try:
            name = recording_name(
                str(document.get("time", "")), chain, str(document.get("request_id", ""))
            )
            data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"
            name = self._write(name, data)
        except OSError as exc:
            return self._failed(f"write_failed: {errno.errorcode.get(exc.errno or 0, 'EIO')}")
        except Exception as exc:  # a recording must never cost the exchange its audit event
            return self._failed(f"write_failed: {type(exc).__name__}")
        finally:
            with self._lock:
                self._waiting -= 1
        return {
            "file": name,
            "sha256": digest(data),
            "bytes": len(data),
            "truncated": bool(document.get("truncated")),
        }

    def _write(self, name: str, data: bytes) -> str:
        wanted = self.directory / name
        new_day = not wanted.parent.is_dir()
        wanted.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written in full under a name of this thread's, then renamed: retention never sees a
        # half-written recording, and two of the pool's threads never write the same file.
        temporary = wanted.with_name(f".{wanted.name}.{threading.get_ident()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._names:  # the same request id twice in one microsecond: a suffix
            path = wanted
            for attempt in range(1, 100):
                if not path.exists():
                    break
                path = wanted.with_name(f"{wanted.stem}~{attempt}.json")
            else:
                os.unlink(temporary)
                raise FileExistsError(errno.EEXIST, "no free recording name", str(wanted))
            os.replace(temporary, path)
        fsync_directory(path.parent)
        if new_day:
            fsync_directory(path.parent.parent)
        return path.relative_to(self.directory).as_posix()

    def _failed(self, error: str) -> dict[str, Any]:
        self.failures += 1
        log.error("session recording not written", extra={"reason": error})
        return {"error": error}

    # -- retention --------------------------------------------------------------------------------
    def start_retention(self) -> None:
        """Prune now and then every ``retention_interval_seconds`` on a daemon thread."""
        if self._retention is not None:
            return
        self._retention = threading.Thread(
            target=self._retain, name="extproc-recording-retention", daemon=True
        )
        self._retention.start()

    def _retain(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune()
            except OSError as exc:
                log.error("recording retention failed", extra={"error_type": type(exc).__name__})
            self._stop.wait(self.config.retention_interval_seconds)

    def prune(self, now: float | None = None) -> Pruned:
        return prune(self.directory, self._sealer, self.config, now)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


def _done(result: dict[str, Any]) -> Future[dict[str, Any]]:
    done: Future[dict[str, Any]] = Future()
    done.set_result(result)
    return done


def prune(
    directory: Path, sealer: Sealer, config: RecordingConfig, now: float | None = None
) -> Pruned:
    """Remove recordings past ``max_age_seconds``, then the oldest beyond ``max_total_bytes``,
    each signed into the expiry log first."""
    root = directory / RECORDINGS_DIRECTORY
    result = Pruned()
    if not root.is_dir():
        return result
    now = time.time() if now is None else now
    cutoff = utc_timestamp(datetime.fromtimestamp(now - config.max_age_seconds, UTC))
    with _exclusive(root / _LOCK_NAME) as locked:
        if not locked:
            result.busy = True
            return result
        files = sorted(_recordings(directory))  # (started_at, name, size), oldest first
        expire: list[tuple[str, str, int]] = []
        total = sum(size for _at, _name, size in files)
        for started_at, name, size in files:
            too_old = config.max_age_seconds > 0 and started_at < cutoff
            too_big = 0 < config.max_total_bytes < total
            if not (too_old or too_big):
                break  # files are oldest first: everything after is newer and fits
            expire.append((name, "max_age" if too_old else "max_total_bytes", size))
            total -= size
            if too_old:
                result.by_age += 1
            else:
                result.by_size += 1
            result.bytes += size
        result.kept, result.kept_bytes = len(files) - len(expire), total
        if expire:
            _expire(directory, sealer, expire, utc_timestamp(datetime.fromtimestamp(now, UTC)))
    return result


def _expire(directory: Path, sealer: Sealer, expire: list[tuple[str, str, int]], when: str) -> None:
    lines = []
    for name, reason, size in expire:
        data = (directory / name).read_bytes()
        entry = {"file": name, "sha256": digest(data), "bytes": size, "reason": reason}
        lines.append(sealer.seal_expiry({**entry, "expired_at": when}))
    log_path = directory / RECORDINGS_DIRECTORY / EXPIRY_LOG
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, b"".join(lines))
        os.fsync(fd)  # the expiry is durable before the recording is gone
    finally:
        os.close(fd)
    days = set()
    for name, _reason, _size in expire:
        path = directory / name
        path.unlink(missing_ok=True)
        days.add(path.parent)
    for day in days:
        with contextlib.suppress(OSError):  # a day still holding recordings stays
            day.rmdir()


def recording_files(directory: Path) -> list[str]:
    """The names (relative to the audit directory) of the recordings on disk."""
    if not (directory / RECORDINGS_DIRECTORY).is_dir():
        return []
    return [name for _at, name, _size in _recordings(directory)]


def _recordings(directory: Path) -> Iterator[tuple[str, str, int]]:
    root = directory / RECORDINGS_DIRECTORY
    for day in root.iterdir():
        if not day.is_dir():
            continue
        for path in day.glob("*.json"):
            name = path.relative_to(directory).as_posix()
            started_at = started_at_of(name)
            if started_at is not None:
                yield started_at, name, path.stat().st_size


class _exclusive:
    """A non-blocking lock on a file: ``with _exclusive(path) as locked``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> bool:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)  # closing releases the lock


# -- reading back: verify and replay --------------------------------------------------------------
@dataclass(slots=True)
class ExpiryLog:
    """The signed expiry entries of one audit directory, by file; ``problems`` are lines that
    do not open with the key (edited or forged)."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_expiry_log(directory: Path, sealer: Sealer) -> ExpiryLog:
    expiry = ExpiryLog()
    path = directory / RECORDINGS_DIRECTORY / EXPIRY_LOG
    if not path.is_file():
        return expiry
    shown = f"{RECORDINGS_DIRECTORY}/{EXPIRY_LOG}"
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # cut short by a crash mid-append; its recording was not removed yet
            try:
                entry = sealer.open_expiry(line[:-1])
            except RecordError as exc:
                expiry.problems.append(f"{shown}:{number}: {exc} (edited or forged)")
                continue
            expiry.entries[str(entry.get("file"))] = entry
    return expiry


@dataclass(frozen=True, slots=True)
class RecordingState:
    """What verify found of one recording an event names."""

    status: str  # ok | edited | missing | expired | expired_after_edit | unreadable_name
    detail: str = ""


def check_recording(
    directory: Path, recording: Mapping[str, Any], expiry: ExpiryLog
) -> RecordingState:
    name, wanted = recording.get("file"), recording.get("sha256")
    if not isinstance(name, str) or not is_recording_name(name) or ".." in name:
        return RecordingState("unreadable_name", f"names no recording file: {name!r}")
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        entry = expiry.entries.get(name)
        if entry is None:
            return RecordingState("missing", f"{name} is missing (deleted or moved)")
        if entry.get("sha256") != wanted:
            return RecordingState(
                "expired_after_edit",
                f"{name} was removed by retention, but it had been edited before (its digest "
                "then differed from the one its audit event holds)",
            )
        return RecordingState("expired", f"{name} expired ({entry.get('reason')})")
    if digest(data) != wanted:
        return RecordingState(
            "edited", f"{name} was edited (its SHA-256 differs from the one its audit event holds)"
        )
    return RecordingState("ok")


@dataclass(frozen=True, slots=True)
class FoundEvent:
    event: dict[str, Any]
    directory: Path
    where: str  # file:line


def find_event(
    chains: Iterable[tuple[Path, list[Path]]], wanted: str, sealer: Sealer
) -> FoundEvent | None:
    """The last sealed event of ``wanted`` (its request id or decision id) that names a
    recording; else the last event of it. Each candidate line must open with the key."""
    needle = orjson.dumps(wanted)
    best: FoundEvent | None = None
    for directory, files in chains:
        for path in files:
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if needle not in line or not line.endswith(b"\n"):
                        continue
                    try:
                        record = sealer.open(line[:-1]).record
                    except RecordError:
                        continue
                    if wanted not in (record.get("request_id"), record.get("decision_id")):
                        continue
                    found = FoundEvent(record, directory, f"{path.name}:{number}")
                    if best is None or "recording" in record or "recording" not in best.event:
                        best = found
    return best
