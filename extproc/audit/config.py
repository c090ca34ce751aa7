"""The ``audit`` config section → where and how the trail is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from extproc.audit.writer import WriterSettings
from extproc.config.keys import read_key
from extproc.config.node import Node

_KEYS = (
    "directory", "key_env", "key_file", "rotate_bytes", "batch_max_events", "flush_interval_ms",
    "queue_max_events", "when_full", "block_timeout_ms", "capture_payloads", "capture_max_bytes",
)  # fmt: skip


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
    assert directory is not None
    writer = WriterSettings(
        rotate_bytes=node.integer("rotate_bytes", 64 * 1024 * 1024, minimum=4096),
        batch_max_events=node.integer("batch_max_events", 256, minimum=1),
        flush_interval=node.integer("flush_interval_ms", 50, minimum=1) / 1000,
        queue_max_events=node.integer("queue_max_events", 10_000, minimum=1),
        when_full=node.choice("when_full", ("block", "deny"), "block"),  # type: ignore[arg-type]
        block_timeout=node.integer("block_timeout_ms", 100, minimum=0) / 1000,
    )
    return AuditConfig(
        directory=directory,
        key=read_key(node, base_dir, "audit"),
        writer=writer,
        capture_payloads=node.boolean("capture_payloads", False),
        capture_max_bytes=node.integer("capture_max_bytes", 4096, minimum=0),
    )
