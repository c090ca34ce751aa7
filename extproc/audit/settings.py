"""The ``audit`` section of the config: its model, and its compile step → ``AuditConfig``.

```yaml
audit:
  directory: audit                 # relative to the config file's directory
  key_env: EXTPROC_AUDIT_KEY       # or key_file: secrets/audit.key (never the key inline)
  rotate_bytes: 67108864
  batch_max_events: 256
  flush_interval_ms: 50
  queue_max_events: 10000
  when_full: block                 # or deny
  block_timeout_ms: 100
  capture_payloads: false          # masked payloads only, for replay
  capture_max_bytes: 4096
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from extproc.audit.config import AuditConfig
from extproc.audit.writer import WriterSettings
from extproc.config.base import FilePath, resolve_path, runtime_default
from extproc.config.keys import KeySource, read_key
from extproc.config.problems import Problems

_MIN_ROTATE_BYTES = 4096


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


class AuditSettings(KeySource):
    """Where the tamper-evident trail is written, with which key, and how durably. Set exactly
    one of ``key_env`` and ``key_file``."""

    directory: FilePath = Field("audit", description="where the chains are written")
    rotate_bytes: int = Field(
        runtime_default(WriterSettings, "rotate_bytes"),
        ge=_MIN_ROTATE_BYTES,
        description="a chain file is rotated past this size",
    )
    batch_max_events: int = Field(
        runtime_default(WriterSettings, "batch_max_events"),
        ge=1,
        description="events written and synced together; at most queue_max_events",
    )
    flush_interval_ms: int = Field(
        _milliseconds(runtime_default(WriterSettings, "flush_interval")),
        ge=0,
        description="how long the oldest waiting event may wait for a fuller batch",
    )
    queue_max_events: int = Field(
        runtime_default(WriterSettings, "queue_max_events"),
        ge=1,
        description="events accepted but not yet durable; past it `when_full` applies",
    )
    when_full: Literal["block", "deny"] = Field(
        runtime_default(WriterSettings, "when_full"),
        description="block: wait up to block_timeout_ms for room; deny: refuse at once "
        "(either way a request that cannot be recorded is denied)",
    )
    block_timeout_ms: int = Field(
        _milliseconds(runtime_default(WriterSettings, "block_timeout")),
        ge=0,
        description="how long a request waits for room under `when_full: block`",
    )
    durability: Literal["before_forward", "after_exchange"] = Field(
        runtime_default(AuditConfig, "durability"),
        description="before_forward: each exchange's opening record is on disk before the "
        "request may reach the model (no served exchange without a record, whatever happens to "
        "the worker); after_exchange: one record when the exchange ends (see README for the cost)",
    )
    commit_window_ms: float = Field(
        runtime_default(WriterSettings, "commit_window") * 1000,
        ge=0,
        le=1000,
        description="how long a durable record waits for others to share its fsync",
    )
    capture_payloads: bool = Field(
        runtime_default(AuditConfig, "capture_payloads"),
        description="record the masked payloads (never raw ones), for replay",
    )
    capture_max_bytes: int = Field(
        runtime_default(AuditConfig, "capture_max_bytes"),
        ge=1,
        description="the most bytes of each captured payload",
    )


def compile_audit(settings: AuditSettings, base_dir: Path) -> AuditConfig:
    problems = Problems()
    if settings.batch_max_events > settings.queue_max_events:
        problems.add(
            ("batch_max_events",),
            f"must not exceed queue_max_events ({settings.queue_max_events})",
        )
    key = read_key(settings, base_dir, "audit", problems)
    problems.check()
    writer = WriterSettings(
        rotate_bytes=settings.rotate_bytes,
        batch_max_events=settings.batch_max_events,
        flush_interval=settings.flush_interval_ms / 1000,
        queue_max_events=settings.queue_max_events,
        when_full=settings.when_full,
        block_timeout=settings.block_timeout_ms / 1000,
        capture_max_bytes=settings.capture_max_bytes if settings.capture_payloads else 0,
        commit_window=settings.commit_window_ms / 1000,
    )
    return AuditConfig(
        directory=resolve_path(settings.directory, base_dir),
        key=key,
        writer=writer,
        capture_payloads=settings.capture_payloads,
        capture_max_bytes=settings.capture_max_bytes,
        durability=settings.durability,
    )
