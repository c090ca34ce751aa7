"""SQLite connections for the approval store: one per thread and process, opened on first use.

A connection is never shared between threads (grpc.aio services reach the store through
``asyncio.to_thread``, whose worker threads each get their own) and never inherited across a
fork (a child opens its own). ``close`` closes every connection the store opened in this
process. ``unavailable`` turns SQLite's own failures into the store's one error, so callers
fail closed without knowing the backend.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from extproc.approvals.schema import SCHEMA
from extproc.errors import ApprovalError, Code

P = ParamSpec("P")
T = TypeVar("T")


def unavailable(method: Callable[P, T]) -> Callable[P, T]:
    """SQLite errors (locked past ``busy_timeout``, unreadable, disk full) and unreadable
    stored documents become ``ApprovalError`` ``approvals_unavailable``."""

    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise ApprovalError(
                f"the approval store cannot be used: {type(exc).__name__}: {exc}",
                code=Code.APPROVALS_UNAVAILABLE,
            ) from None
        except ValueError as exc:  # a stored document the codec refuses
            raise ApprovalError(
                f"the approval store holds an unreadable approval: {exc}",
                code=Code.APPROVALS_UNAVAILABLE,
            ) from None

    guarded.__doc__ = method.__doc__
    return guarded


class Connections:
    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def setup(self) -> None:
        """Create the file (owner-only: it holds people's words), WAL mode and the tables."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        mode = self.current().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode on {self.path} (got {mode})")
        with self.transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)

    def current(self) -> sqlite3.Connection:
        """This thread's connection in this process."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self._connect()
            local.pid = os.getpid()
        connection: sqlite3.Connection = local.connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the write lock from its first statement (IMMEDIATE), so
        what it reads cannot change before it writes."""
        db = self.current()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def data_version(self) -> int:
        """Moves whenever another connection (any thread, any process) commits."""
        return int(self.current().execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise ApprovalError("the approval store is closed", code=Code.APPROVALS_UNAVAILABLE)
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), not the module's.
            # check_same_thread=False only so close() can close it; one thread ever uses it.
            connection = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._opened.append(connection)
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        connection.execute("PRAGMA synchronous = FULL")
        return connection
