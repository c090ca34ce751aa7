"""The ``audit`` config section: where the trail is written, with which key, how durably.

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from extproc.audit.writer import WriterSettings
from extproc.config.keys import read_key
from extproc.config.node import Node

_KEYS = (
    "directory", "key_env", "key_file", "rotate_bytes", "batch_max_events", "flush_interval_ms",
    "queue_max_events", "when_full", "block_timeout_ms", "capture_payloads", "capture_max_bytes",
)  # fmt: skip
_MIN_ROTATE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class AuditConfig:
    directory: Path
    key: bytes = field(repr=False)
    writer: WriterSettings = field(default_factory=WriterSettings)
    capture_payloads: bool = False
    capture_max_bytes: int = 4096


def parse_audit_config(node: Node, base_dir: Path) -> AuditConfig:
    node.reject_unknown(_KEYS)
    directory = node.path_value("directory", base_dir, "audit")
    if directory is None:
        raise node.child("directory").error("expected a directory path")
    when_full: Literal["block", "deny"] = (
        "deny" if node.choice("when_full", ("block", "deny"), "block") == "deny" else "block"
    )
    capture_payloads = node.boolean("capture_payloads", False)
    capture_max_bytes = node.integer("capture_max_bytes", 4096, minimum=1)
    writer = WriterSettings(
        rotate_bytes=node.integer("rotate_bytes", 64 * 1024 * 1024, minimum=_MIN_ROTATE_BYTES),
        batch_max_events=node.integer("batch_max_events", 256, minimum=1),
        flush_interval=node.integer("flush_interval_ms", 50, minimum=0) / 1000,
        queue_max_events=node.integer("queue_max_events", 10_000, minimum=1),
        when_full=when_full,
        block_timeout=node.integer("block_timeout_ms", 100, minimum=0) / 1000,
        capture_max_bytes=capture_max_bytes if capture_payloads else 0,
    )
    if writer.batch_max_events > writer.queue_max_events:
        raise node.child("batch_max_events").error(
            f"must not exceed queue_max_events ({writer.queue_max_events})"
        )
    return AuditConfig(
        directory=directory,
        key=read_key(node, base_dir, "audit"),
        writer=writer,
        capture_payloads=capture_payloads,
        capture_max_bytes=capture_max_bytes,
    )
