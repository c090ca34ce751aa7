"""The approval store's tables (SQLite dialect; a PostgreSQL backend keeps the same shape).

``approvals`` holds one row per approval: the columns the store searches on, and the whole
approval as JSON (``extproc.approval.codec``), so the rules never depend on a column layout.
``changes`` is the feed every waiter, watcher and notifier reads (AUTOINCREMENT: a version is
never reused, even after old changes are pruned). ``cursors`` remembers how far each feed
reader got, so a restarted notifier neither repeats nor skips. Statements are idempotent.
"""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS approvals (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        subject TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        grant_expires_at REAL,
        version INTEGER NOT NULL,
        document TEXT NOT NULL
    )""",
    # One pending approval per subject and scope: retries of a held request join it.
    """CREATE UNIQUE INDEX IF NOT EXISTS approvals_one_pending
        ON approvals (subject, scope_key) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS approvals_grants
        ON approvals (subject, scope_key, grant_expires_at) WHERE status = 'approved'""",
    "CREATE INDEX IF NOT EXISTS approvals_by_time ON approvals (created_at)",
    "CREATE INDEX IF NOT EXISTS approvals_by_status ON approvals (status, expires_at)",
    """CREATE TABLE IF NOT EXISTS changes (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        approval_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        document TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS changes_by_time ON changes (at)",
    """CREATE TABLE IF NOT EXISTS cursors (
        consumer TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    )""",
)
