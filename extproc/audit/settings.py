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
  capture_payloads: false          # masked payloads inside the event (see recording instead)
  capture_max_bytes: 4096
  recording:                       # session recordings beside the trail (docs/replay.md)
    enabled: true
    profiles: [standard]           # and/or paths: ["/eu/v1/*"]; neither: every exchange
    max_bytes: 1048576
    max_age: 30d
    max_total_bytes: 10737418240
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from extproc.audit.config import AuditConfig
from extproc.audit.recording import RecordingConfig
from extproc.audit.writer import WriterSettings
from extproc.config.base import FilePath, Name, SettingsModel, resolve_path, runtime_default
from extproc.config.durations import parse_duration
from extproc.config.keys import KeySource, read_key
from extproc.config.problems import Problems

_MIN_ROTATE_BYTES = 4096


Duration = Annotated[
    int | float | str,
    Field(description='seconds, or a duration such as "90s", "15m", "1h30m", "12h", "30d"'),
]


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


class RecordingSettings(SettingsModel):
    """Session recordings: the masked request and response of chosen exchanges, one file each
    beside the trail, bound to the exchange's closing event by its SHA-256."""

    enabled: bool = Field(False, description="record exchanges (off by default)")
    profiles: tuple[Name, ...] = Field(
        (), description="record exchanges masked with these profiles (with paths: either)"
    )
    paths: tuple[Name, ...] = Field(
        (), description='record exchanges whose masked path matches one of these globs ("/eu/*")'
    )
    max_bytes: int = Field(
        runtime_default(RecordingConfig, "max_bytes"),
        ge=1024,
        description="the most bytes one recording holds (bodies, chunks, headers); past it the "
        "recording is cut and marked truncated",
    )
    max_age: Duration = Field(
        "30d", description="recordings older than this are removed (0: kept until max_total)"
    )
    max_total_bytes: int = Field(
        runtime_default(RecordingConfig, "max_total_bytes"),
        ge=0,
        description="past this total size the oldest recordings are removed (0: no limit)",
    )
    retention_interval: Duration = Field(
        "60s", description="how often the processor applies max_age and max_total_bytes"
    )


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
        description="the most bytes of each captured payload (the event's capture field)",
    )
    recording: RecordingSettings = Field(
        default_factory=RecordingSettings,
        description="session recordings for replay (extproc audit replay)",
    )


def compile_audit(
    settings: AuditSettings, base_dir: Path, profiles: tuple[str, ...] | None = None
) -> AuditConfig:
    """``profiles``: the masking profiles the config defines (None: not known here), which
    ``recording.profiles`` must name."""
    problems = Problems()
    if settings.batch_max_events > settings.queue_max_events:
        problems.add(
            ("batch_max_events",),
            f"must not exceed queue_max_events ({settings.queue_max_events})",
        )
    key = read_key(settings, base_dir, "audit", problems)
    recording = _compile_recording(settings.recording, problems)
    for index, name in enumerate(settings.recording.profiles):
        if profiles is not None and name not in profiles:
            known = ", ".join(profiles) or "none"
            problems.add(
                ("recording", "profiles", index),
                f"no masking profile named {name!r} (defined: {known})",
            )
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
        recording=recording,
    )


def _compile_recording(settings: RecordingSettings, problems: Problems) -> RecordingConfig:
    seconds: dict[str, float] = {}  # a duration that cannot be read is a problem, not a value
    for name in ("max_age", "retention_interval"):
        try:
            seconds[name] = parse_duration(getattr(settings, name))
        except ValueError as exc:
            problems.add(("recording", name), str(exc))
    if seconds.get("retention_interval") == 0:
        problems.add(("recording", "retention_interval"), "must be more than 0")
    return RecordingConfig(
        enabled=settings.enabled,
        profiles=settings.profiles,
        paths=settings.paths,
        max_bytes=settings.max_bytes,
        max_age_seconds=seconds.get("max_age", 0.0),
        max_total_bytes=settings.max_total_bytes,
        retention_interval_seconds=seconds.get("retention_interval") or 60.0,
    )
