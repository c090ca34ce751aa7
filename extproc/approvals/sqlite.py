"""The approval store in one SQLite file, shared by every worker process of every service.

- WAL mode (readers never wait for the writer), ``busy_timeout`` (a writer waits for another
  instead of failing), ``synchronous=FULL`` (a decision, once answered, survives a power cut).
- One connection per thread and process (a connection is never shared; a forked child opens its
  own), so grpc.aio services call the store from ``asyncio.to_thread``.
- Every transition runs in ``BEGIN IMMEDIATE`` (the write lock is taken before the row is
  read) and writes with ``WHERE version = ?``: of two processes reviewing at once, one commits
  and the other reads the result and is judged again by the pure rules.
- A partial unique index keeps one pending approval per subject and scope key, whatever the
  number of processes opening them.
- Changes are noticed by polling ``PRAGMA data_version`` (it moves when another connection
  commits) every ``poll_interval`` seconds: a decision in one process reaches a waiter in
  another within about that interval.

Errors of SQLite itself (a locked or unreadable file, a full disk) become ``ApprovalError``
``approvals_unavailable``: callers fail closed.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from extproc.approval import rules
from extproc.approval.codec import approval_from_dict, approval_to_dict
from extproc.approval.ids import check_approval_id
from extproc.approval.model import Approval, EventKind, Person, Status, Verdict
from extproc.approval.store import Change, Opened
from extproc.approvals.connections import Connections, unavailable
from extproc.errors import ApprovalError, Code

_BY_ID = "SELECT document FROM approvals WHERE id = ?"
_PENDING_TWIN = (
    "SELECT document FROM approvals WHERE subject = ? AND scope_key = ? AND status = 'pending'"
)
_DUE = (
    "SELECT document FROM approvals WHERE (status = 'pending' AND expires_at <= ?)"
    " OR (status = 'approved' AND grant_expires_at <= ?)"
)
_INSERT = (
    "INSERT INTO approvals (id, status, subject, scope_key, created_at, expires_at,"
    " grant_expires_at, version, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteApprovalStore:
    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 5.0,
        poll_interval: float = 0.1,
        change_retention: float = 7 * 86400.0,
    ) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._retention = change_retention
        self._connections = Connections(path, busy_timeout)
        unavailable(self._connections.setup)()

    # -- the ApprovalStore protocol -------------------------------------------------------------
    @unavailable
    def create(self, approval: Approval) -> Opened:
        with self._transaction() as db:
            twin = self._one(
                db, _PENDING_TWIN, (approval.requester.subject, approval.target.scope_key)
            )
            if twin is not None:
                ended = rules.expire(twin, approval.created_at)
                if ended is None:
                    return Opened(twin, created=False)
                self._write(db, twin.version, ended, ("expired",), approval.created_at)
            self._insert(db, approval)
            self._append(db, "requested", approval, approval.created_at)
        return Opened(approval, created=True)

    @unavailable
    def get(self, approval_id: str) -> Approval:
        found = self._one(self._db(), _BY_ID, (check_approval_id(approval_id),))
        if found is None:
            raise ApprovalError(f"no approval {approval_id}", code=Code.APPROVAL_NOT_FOUND)
        return found

    @unavailable
    def review(
        self,
        approval_id: str,
        reviewer: Person,
        verdict: Verdict,
        *,
        reason: str | None,
        ttl_seconds: float | None,
        now: float,
    ) -> Approval:
        def apply(current: Approval) -> tuple[Approval, tuple[EventKind, ...]]:
            return rules.review(
                current, reviewer, verdict, reason=reason, ttl_seconds=ttl_seconds, now=now
            )

        return self._transition(approval_id, apply, now)

    @unavailable
    def revoke(
        self, approval_id: str, actor: Person, *, reason: str | None, now: float
    ) -> Approval:
        def apply(current: Approval) -> tuple[Approval, tuple[EventKind, ...]]:
            return rules.revoke(current, actor, reason=reason, now=now), ("revoked",)

        return self._transition(approval_id, apply, now)

    @unavailable
    def list(
        self, *, status: Status | None = None, since: float | None = None, limit: int = 100
    ) -> builtins.list[Approval]:
        rows = self._db().execute(
            "SELECT document FROM approvals WHERE (?1 IS NULL OR status = ?1)"
            " AND created_at >= ?2 ORDER BY created_at DESC, id LIMIT ?3",
            (status, since if since is not None else float("-inf"), max(0, limit)),
        )
        return [_decode(row[0]) for row in rows]

    @unavailable
    def find_grant(self, subject: str, scope_key: str, now: float) -> Approval | None:
        row = (
            self._db()
            .execute(
                "SELECT document FROM approvals WHERE subject = ? AND scope_key = ?"
                " AND status = 'approved' AND grant_expires_at > ?"
                " ORDER BY grant_expires_at DESC LIMIT 1",
                (subject, scope_key, now),
            )
            .fetchone()
        )
        return None if row is None else _decode(row[0])

    @unavailable
    def expire(self, now: float) -> builtins.list[Approval]:
        ended: builtins.list[Approval] = []
        with self._transaction() as db:
            rows = db.execute(_DUE, (now, now))
            for due in [_decode(row[0]) for row in rows]:
                after = rules.expire(due, now)
                if after is not None:
                    self._write(db, due.version, after, ("expired",), now)
                    ended.append(after)
            db.execute("DELETE FROM changes WHERE at < ?", (now - self._retention,))
        return ended

    @unavailable
    def version(self) -> int:
        row = self._db().execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        found = row.fetchone()
        return int(found[0]) if found else 0

    @unavailable
    def changes(self, since_version: int, limit: int = 100) -> builtins.list[Change]:
        rows = self._db().execute(
            "SELECT version, kind, at, document FROM changes WHERE version > ?"
            " ORDER BY version LIMIT ?",
            (since_version, max(1, limit)),
        )
        return [Change(int(v), kind, _decode(doc), float(at)) for v, kind, at, doc in rows]

    def wait_for_change(self, approval_id: str, after_version: int, timeout: float) -> Approval:
        deadline = time.monotonic() + max(0.0, timeout)
        seen = self._data_version()
        while True:
            approval = self.get(approval_id)
            if approval.version > after_version or time.monotonic() >= deadline:
                return approval
            while time.monotonic() < deadline:
                time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
                current = self._data_version()
                if current != seen:
                    seen = current
                    break

    @unavailable
    def cursor(self, consumer: str) -> int | None:
        row = self._db().execute("SELECT version FROM cursors WHERE consumer = ?", (consumer,))
        found = row.fetchone()
        return None if found is None else int(found[0])

    @unavailable
    def save_cursor(self, consumer: str, version: int) -> None:
        self._db().execute(
            "INSERT INTO cursors (consumer, version) VALUES (?, ?)"
            " ON CONFLICT (consumer) DO UPDATE SET version = excluded.version",
            (consumer, version),
        )

    def close(self) -> None:
        """Close every connection this store opened (in any thread of this process)."""
        self._connections.close()

    # -- transactions ---------------------------------------------------------------------------
    def _transition(
        self,
        approval_id: str,
        apply: Callable[[Approval], tuple[Approval, tuple[EventKind, ...]]],
        now: float,
    ) -> Approval:
        check_approval_id(approval_id)
        with self._transaction() as db:
            current = self._one(db, _BY_ID, (approval_id,))
            if current is None:
                raise ApprovalError(f"no approval {approval_id}", code=Code.APPROVAL_NOT_FOUND)
            after, kinds = apply(current)
            self._write(db, current.version, after, kinds, now)
        return after

    def _write(
        self,
        db: sqlite3.Connection,
        expected_version: int,
        after: Approval,
        kinds: tuple[EventKind, ...],
        now: float,
    ) -> None:
        updated = db.execute(
            "UPDATE approvals SET status = ?, grant_expires_at = ?, version = ?, document = ?"
            " WHERE id = ? AND version = ?",
            (
                after.status,
                after.grant_expires_at,
                after.version,
                _encode(after),
                after.id,
                expected_version,
            ),
        )
        if updated.rowcount != 1:
            # Unreachable under BEGIN IMMEDIATE; kept so the contract holds for any backend.
            raise ApprovalError(
                f"approval {after.id} changed while it was being decided; try again",
                code=Code.APPROVALS_UNAVAILABLE,
            )
        for kind in kinds:
            self._append(db, kind, after, now)

    def _insert(self, db: sqlite3.Connection, approval: Approval) -> None:
        db.execute(
            _INSERT,
            (
                approval.id,
                approval.status,
                approval.requester.subject,
                approval.target.scope_key,
                approval.created_at,
                approval.expires_at,
                approval.grant_expires_at,
                approval.version,
                _encode(approval),
            ),
        )

    def _append(
        self, db: sqlite3.Connection, kind: EventKind, approval: Approval, at: float
    ) -> None:
        db.execute(
            "INSERT INTO changes (approval_id, kind, at, document) VALUES (?, ?, ?, ?)",
            (approval.id, kind, at, _encode(approval)),
        )

    def _one(self, db: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> Approval | None:
        row = db.execute(query, args).fetchone()
        return None if row is None else _decode(row[0])

    def _db(self) -> sqlite3.Connection:
        return self._connections.current()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.transaction()

    @unavailable
    def _data_version(self) -> int:
        return self._connections.data_version()


def _encode(approval: Approval) -> str:
    return orjson.dumps(approval_to_dict(approval)).decode("utf-8")


def _decode(document: str) -> Approval:
    return approval_from_dict(orjson.loads(document))
