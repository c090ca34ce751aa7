"""One chain's JSONL files: resumed when opened, appended to durably, rotated by size.

``ChainStore`` is what ``AuditWriter`` needs from a sink (another sink, a database say, would
implement the same two methods); ``ChainFiles`` is the file implementation.

- One process per chain: ``<chain>.lock`` is held (``flock``) while the store is open, so two
  processes can never interleave records. The lock dies with its process, so ``kill -9`` never
  leaves a chain locked.
- ``append`` is all or nothing: the batch is written at the durable end of the current file
  (``pwrite``) and fsynced, and only then do the tip and the signed head advance (the head
  right away, or when the writer calls ``update_head`` once it has told the callers waiting
  for the batch). After an error the retry writes at the same place and cuts off whatever the
  failed attempt left.
- A file that a batch would push past ``rotate_bytes`` rotates first: a file exceeds it only
  when a single batch does. The chain goes on in the next file.
- Opening resumes from the last complete record (see ``resume``): a torn write is moved aside
  and recorded, and a head that names more than the files hold is recorded as a truncation.
- The lock file also holds the writer's note for its successor (see ``pending``): the gaps and
  unwritten events of a writer that stopped while its writes failed, recorded at the next open.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from extproc.audit.chain import ChainTip, Sealer
from extproc.audit.event import utc_timestamp
from extproc.audit.files import (
    check_chain_id,
    file_name,
    fsync_directory,
    head_path,
    lock_path,
    replace_file,
    write_at,
)
from extproc.audit.gaps import LOST
from extproc.audit.pending import NoteArea, applies, recoveries, reserve
from extproc.audit.resume import Resumption, resume
from extproc.audit.writer_settings import DEFAULT_ROTATE_BYTES
from extproc.errors import AuditError

log = logging.getLogger("extproc.audit")
# What an event that cannot be serialised keeps: enough to find the request, nothing else.
_KEPT_WHEN_UNENCODABLE = ("time", "service", "request_id", "decision_id", "decision", "rule")
# A deferred head is rewritten at most this often under load. Replacing the file costs about
# 85 µs of CPU, once per batch before; a head may lag anyway (verify accepts it, and a restart
# resumes from the records, not the head), and it never names a record that is not durable.
HEAD_INTERVAL = 0.05


class ChainStore(Protocol):
    @property
    def chain(self) -> str: ...

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Seal ``events`` and make them durable, in order: all of them, or none and raise
        ``OSError``."""

    def close(self) -> None: ...


@runtime_checkable
class LaterHead(Protocol):
    """A store whose signed head its writer may update after telling the waiting callers, so
    the head's write is not in their latency (a head may lag: verify accepts that)."""

    def defer_head(self) -> None:
        """From now on ``append`` leaves the head to ``update_head``."""

    def update_head(self, *, now: bool = False) -> None:
        """Write the head if it lags and was last written ``HEAD_INTERVAL`` ago (or ``now``)."""

    def head_due_in(self) -> float | None:
        """Seconds until a lagging head is due; None when it names the tip already."""


class ChainFiles:
    """The JSONL files of one chain in ``directory``. Not thread-safe: one writer thread.

    Opening raises ``AuditError`` when the chain is in use by another process, when its last
    record cannot be trusted (another key, or edited), or when its directory cannot be used.
    """

    def __init__(
        self, directory: Path, chain: str, key: bytes, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES
    ) -> None:
        check_chain_id(chain)
        if rotate_bytes < 1:
            raise ValueError("rotate_bytes must be positive")
        self.directory = directory
        self._chain = chain
        self._sealer = Sealer(key)
        self._rotate_bytes = rotate_bytes
        self.unencodable = 0
        self.head_errors = 0
        self._fd = -1
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(directory, chain)
        except OSError as exc:
            raise _cannot_open(directory, chain, exc) from None
        self._note = NoteArea(self._lock_fd, self._sealer, chain, usable=reserve(self._lock_fd))
        try:
            start = resume(directory, chain, self._sealer)
            left = self._note.read()
            if left is not None and applies(left, start.tip):
                start.notes.extend(recoveries(left))
            self._fd = os.open(start.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except BaseException as exc:
            _unlock(self._lock_fd)
            if isinstance(exc, OSError):
                raise _cannot_open(directory, chain, exc) from None
            raise
        self._number = start.file_number
        self._offset = start.offset
        self._tip = start.tip
        self._dirty = False
        self._head_later = False  # see defer_head
        self._head_due = False
        self._head_written = -HEAD_INTERVAL  # monotonic time of the last head write
        self.recoveries: tuple[Mapping[str, Any], ...] = tuple(start.notes)
        try:
            self._begin(start)
        except BaseException as exc:
            self.close()
            if isinstance(exc, OSError):
                raise _cannot_open(directory, chain, exc) from None
            raise
        if self._note.found:  # recorded above, stale (the writer recovered first) or unreadable
            self._note.clear()

    @property
    def chain(self) -> str:
        return self._chain

    @property
    def tip(self) -> ChainTip:
        return self._tip

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        lines = []
        tip = self._tip
        unencodable = 0
        for event in events:
            try:
                line, tip = self._sealer.seal(self._chain, tip, event)
            except TypeError as exc:  # orjson's error names the type, never the value
                unencodable += 1
                line, tip = self._sealer.seal(self._chain, tip, _unencodable(event, exc))
            lines.append(line)
        self._write(b"".join(lines), tip)
        if unencodable:
            self.unencodable += unencodable
            log.error(
                "audit events could not be serialised; recorded without their fields",
                extra={"chain": self._chain, "count": unencodable},
            )

    def keep_note(self, note: Mapping[str, Any]) -> None:
        """Keep ``note`` (gaps and unwritten events) for the next writer, at the durable end."""
        self._note.save(self._tip, note)

    def clear_note(self) -> None:
        self._note.clear()

    def defer_head(self) -> None:
        self._head_later = True

    def update_head(self, *, now: bool = False) -> None:
        if self._head_due and (now or time.monotonic() - self._head_written >= HEAD_INTERVAL):
            self._head_due = False
            self._write_head()

    def head_due_in(self) -> float | None:
        if not self._head_due:
            return None
        return max(0.0, self._head_written + HEAD_INTERVAL - time.monotonic())

    def close(self) -> None:
        if self._fd >= 0:
            self.update_head(now=True)
            os.close(self._fd)
            self._fd = -1
            _unlock(self._lock_fd)

    # -- internals ----------------------------------------------------------------------------
    def _begin(self, start: Resumption) -> None:
        """Write the genesis and recovery records a fresh or damaged chain needs. They go at the
        durable end, over any torn bytes (which ``resume`` saved aside first), so a crash here
        leaves at worst a new torn write for the next start to record."""
        fields: list[Mapping[str, Any]] = []
        if start.tip.seq < 0:
            fields.append({"time": utc_timestamp(), "genesis": {"chain": self._chain, "format": 1}})
        fields.extend({"time": utc_timestamp(), "recovery": note} for note in start.notes)
        if fields:
            self._dirty = start.torn  # the records go over the torn bytes; the rest is cut
            self.append(fields)
        else:
            self._write_head()
        causes = [note["cause"] for note in start.notes]
        if causes:
            # Records lost while the writer was down are an incident; a torn write is not.
            lost = "truncated" in causes or LOST in causes
            level = logging.ERROR if lost else logging.WARNING
            log.log(
                level,
                "audit chain resumed after damage",
                extra={"chain": self._chain, "causes": causes},
            )

    def _write(self, data: bytes, tip: ChainTip) -> None:
        if self._offset and self._offset + len(data) > self._rotate_bytes:
            if self._dirty:  # never leave a failed batch's bytes behind in a finished file
                os.ftruncate(self._fd, self._offset)
                os.fsync(self._fd)
                self._dirty = False
            self._rotate()
        end = self._offset + len(data)
        try:
            write_at(self._fd, data, self._offset)
            if self._dirty:  # bytes of a failed batch or a torn write may lie past the new end
                os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        except OSError:
            # Not cut back here: if the process dies now, the next start finds the bytes as a
            # torn write and records it. The retry overwrites them and cuts the rest.
            self._dirty = True
            raise
        self._dirty = False
        self._offset = end
        self._tip = tip
        if self._head_later:
            self._head_due = True
        else:
            self._write_head()

    def _rotate(self) -> None:
        number = self._number + 1
        path = self.directory / file_name(self._chain, number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size:
                raise OSError(errno.EEXIST, f"{path.name} exists and is not empty")
            fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd, self._number, self._offset = fd, number, 0

    def _write_head(self) -> None:
        """The head only ever names durable records. Failing to write it loses nothing (it
        lags, and verify accepts a lagging head), so it is counted and logged, not raised."""
        head = self._sealer.seal_head(self._chain, self._tip, self._number)
        self._head_written = time.monotonic()
        try:
            replace_file(head_path(self.directory, self._chain), head)
        except OSError as exc:
            self.head_errors += 1
            log.error(
                "audit head not written", extra={"chain": self._chain, "reason": exc.strerror}
            )


def _unencodable(event: Mapping[str, Any], exc: Exception) -> dict[str, Any]:
    kept = {
        name: event[name] for name in _KEPT_WHEN_UNENCODABLE if isinstance(event.get(name), str)
    }
    kept.setdefault("time", utc_timestamp())
    return {**kept, "unencodable": str(exc)}


def _cannot_open(directory: Path, chain: str, exc: OSError) -> AuditError:
    return AuditError(f"audit chain {chain} in {directory} cannot be opened: {exc.strerror or exc}")


def _lock(directory: Path, chain: str) -> int:
    fd = os.open(lock_path(directory, chain), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AuditError(
            f"audit chain {chain} in {directory} is in use by another process"
        ) from None
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
