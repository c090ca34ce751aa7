"""Everything one config needs to process exchanges: a masker per profile and the audit chain."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from extproc.audit.sink import writer_for
from extproc.audit.writer import AuditWriter
from extproc.errors import ConfigError
from extproc.masking.engine import Masker
from extproc.processor.exchange import Exchange
from extproc.settings import Config

log = logging.getLogger("extproc.processor")


class ProcessorRuntime:
    def __init__(self, config: Config, worker: int = 0) -> None:
        if config.masking is None:
            raise ConfigError(f"{config.path}: the processor needs a 'masking' section")
        if config.audit is None:
            raise ConfigError(f"{config.path}: the processor needs an 'audit' section")
        self.config = config
        self.masking = config.masking
        self.maskers = {
            name: Masker(p, config.masking.key) for name, p in config.masking.profiles.items()
        }
        self.writer: AuditWriter = writer_for(config.audit, f"processor-{worker}")
        self.capture_bytes = config.audit.capture_max_bytes if config.audit.capture_payloads else 0

    def new_exchange(self) -> Exchange:
        return Exchange(
            self.masking,
            self.maskers,
            capture_bytes=self.capture_bytes,
            audit_available=self.accepting(),
        )

    def accepting(self) -> bool:
        """False while the audit trail would refuse an event (full under ``deny``, or closed):
        no exchange may start that could not be recorded."""
        return self.writer.accepting()

    async def audit(self, exchange: Exchange) -> None:
        event = exchange.audit_event()
        writer = self.writer
        if writer.queue_depth < writer.settings.queue_max_events:
            accepted = writer.submit(event)
        else:
            # Full: under ``block`` submit waits for room; wait off the event loop so other
            # exchanges keep moving meanwhile.
            accepted = await asyncio.to_thread(writer.submit, event)
        if not accepted:
            # The policy gave up: say so loudly; under ``deny`` new exchanges are refused (see
            # accepting) until the queue drains.
            log.error(
                "audit queue full; event not accepted", extra={"request_id": event["request_id"]}
            )

    def watched_files(self) -> list[Path]:
        return [self.config.path]

    def close(self) -> None:
        """The audit writer outlives a config reload; it closes when the process stops."""
