"""The audit trail's runtime settings: where it is written, with which key, how durably
(compiled from the ``audit`` config section by ``extproc.audit.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from extproc.audit.recording import RecordingConfig
from extproc.audit.writer import WriterSettings


@dataclass(frozen=True, slots=True)
class AuditConfig:
    directory: Path
    key: bytes = field(repr=False)
    writer: WriterSettings = field(default_factory=WriterSettings)
    capture_payloads: bool = False
    capture_max_bytes: int = 4096
    # before_forward: an exchange's opening record is durable before the request may reach the
    # model, its closing record follows at the end (a kill -9 loses no served exchange);
    # after_exchange: one record at the end.
    durability: Literal["before_forward", "after_exchange"] = "before_forward"
    recording: RecordingConfig = field(default_factory=RecordingConfig)
