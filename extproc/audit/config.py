"""The audit trail's runtime settings: where it is written, with which key, how durably
(compiled from the ``audit`` config section by ``extproc.audit.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from extproc.audit.writer import WriterSettings


@dataclass(frozen=True, slots=True)
class AuditConfig:
    directory: Path
    key: bytes = field(repr=False)
    writer: WriterSettings = field(default_factory=WriterSettings)
    capture_payloads: bool = False
    capture_max_bytes: int = 4096
