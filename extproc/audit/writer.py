"""The audit writer: a bounded queue, batched durable writes off the request path, rotation,
restart recovery. Never a silent drop.

- ``submit`` is O(1). When the queue is full the configured policy applies: ``block`` waits up
  to ``block_timeout`` and then reports failure; ``deny`` reports failure at once. Either way the
  caller learns the event was not accepted and must deny its request (``audit_unavailable``);
  ``rejected`` counts them.
- A background thread writes batches, then flush + fsync, then the signed head file. A write
  error keeps the batch and retries; events stay queued meanwhile.
- Each writer owns one chain (``<service>-<worker>``), guarded by an exclusive lock file so a
  second process cannot interleave records. Files are ``<chain>.<n>.jsonl``; a full file rotates
  to the next number and the chain goes on across files.
- On start the chain continues from its last complete record. A torn last line (the process was
  killed mid-write) is moved to ``<file>.torn`` and a ``recovery`` record with the fragment's
  SHA-256 and length is appended, so verification passes and shows what happened.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from extproc.audit.chain import ChainState, Sealer

log = logging.getLogger("extproc.audit")
_FILE = re.compile(r"^(?P<chain>[\w.-]+)\.(?P<n>\d{6})\.jsonl$")
_STOP = object()


@dataclass(frozen=True, slots=True)
class WriterSettings:
    rotate_bytes: int = 64 * 1024 * 1024
    batch_max_events: int = 256
    flush_interval: float = 0.05
    queue_max_events: int = 10_000
    when_full: Literal["block", "deny"] = "block"
    block_timeout: float = 0.1


def chain_files(directory: Path, chain: str) -> list[Path]:
    found = []
    for path in directory.glob(f"{chain}.*.jsonl"):
        match = _FILE.match(path.name)
        if match and match["chain"] == chain:
            found.append((int(match["n"]), path))
    return [path for _, path in sorted(found)]


class AuditWriter:
    def __init__(
        self,
        directory: Path,
        chain: str,
        key: bytes,
        settings: WriterSettings | None = None,
    ) -> None:
        self.directory = directory
        self.chain = chain
        self.settings = settings or WriterSettings()
        self._sealer = Sealer(key)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.settings.queue_max_events)
        self.submitted = 0
        self.written = 0
        self.rejected = 0
        self.write_errors = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = (directory / f"{chain}.lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise RuntimeError(f"audit chain {chain} is in use by another process") from None
        self._state = ChainState(chain)
        self._file_number = 0
        self._handle: BinaryIO = self._open_chain()
        self._thread = threading.Thread(target=self._run, name=f"audit-{chain}", daemon=True)
        self._thread.start()

    # -- the request path -----------------------------------------------------------------------
    def submit(self, event: dict[str, Any]) -> bool:
        try:
            if self.settings.when_full == "block":
                self._queue.put(event, timeout=self.settings.block_timeout)
            else:
                self._queue.put_nowait(event)
        except queue.Full:
            self.rejected += 1
            return False
        self.submitted += 1
        return True

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._handle.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        stopping = False
        while not stopping or pending:
            if not pending:
                item = self._queue.get()
                if item is _STOP:
                    return
                pending.append(item)
            deadline = time.monotonic() + self.settings.flush_interval
            while len(pending) < self.settings.batch_max_events and not stopping:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    pending.append(item)
            try:
                self._write(pending)
                self.written += len(pending)
                pending = []
            except OSError as exc:
                self.write_errors += 1
                log.error("audit write failed; retrying", extra={"reason": str(exc)})
                time.sleep(0.5)

    def _write(self, events: list[dict[str, Any]]) -> None:
        state = ChainState(self._state.chain, self._state.seq, self._state.last_hash)
        data = b"".join(self._sealer.seal(state, "event", event) for event in events)
        if self._handle.tell() + len(data) > self.settings.rotate_bytes and self._handle.tell():
            self._rotate()
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._state = state  # advance only once the records are durable
        self._write_head()

    # -- files ----------------------------------------------------------------------------------
    def _open_chain(self) -> BinaryIO:
        files = chain_files(self.directory, self.chain)
        if not files:
            return self._start_file(0, genesis=True)
        last = files[-1]
        self._file_number = int(_FILE.match(last.name)["n"])  # type: ignore[index]
        self._recover(files)
        handle = last.open("ab")
        if self._torn is not None:
            fragment, where = self._torn
            body = {
                "reason": "a torn record was found at restart and moved aside",
                "file": last.name,
                "torn_bytes": len(fragment),
                "torn_sha256": hashlib.sha256(fragment).hexdigest(),
                "moved_to": where.name,
            }
            handle.write(self._sealer.seal(self._state, "recovery", body))
            handle.flush()
            os.fsync(handle.fileno())
            log.warning("audit chain recovered a torn record", extra={"chain": self.chain})
        self._write_head()
        return handle

    def _recover(self, files: list[Path]) -> None:
        """Continue from the last complete record of the last file."""
        self._torn: tuple[bytes, Path] | None = None
        last = files[-1]
        data = last.read_bytes()
        end = len(data)
        if data and not data.endswith(b"\n"):
            end = data.rfind(b"\n") + 1
            fragment = data[end:]
            aside = last.with_name(f"{last.name}.{int(time.time())}.torn")
            aside.write_bytes(fragment)
            with last.open("r+b") as handle:
                handle.truncate(end)
                os.fsync(handle.fileno())
            self._torn = (fragment, aside)
        lines = data[:end].splitlines()
        if not lines and len(files) > 1:
            lines = files[-2].read_bytes().splitlines()
        if lines:
            record = orjson.loads(lines[-1])
            self._state = ChainState(self.chain, int(record["seq"]), str(record["hash"]))

    def _start_file(self, number: int, *, genesis: bool) -> BinaryIO:
        self._file_number = number
        path = self.directory / f"{self.chain}.{number:06d}.jsonl"
        handle = path.open("ab")
        if genesis:
            handle.write(self._sealer.seal(self._state, "genesis", {"chain": self.chain}))
            handle.flush()
            os.fsync(handle.fileno())
            self._write_head()
        return handle

    def _rotate(self) -> None:
        self._handle.close()
        self._handle = self._start_file(self._file_number + 1, genesis=False)

    def _write_head(self) -> None:
        path = self.directory / f"{self.chain}.head"
        temporary = path.with_suffix(".head.tmp")
        temporary.write_bytes(self._sealer.head(self._state))
        os.replace(temporary, path)
