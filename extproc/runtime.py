"""What each service serves with: everything one config needs, built by ``extproc.app``.

A runtime is immutable once built and is replaced whole on a config reload (``extproc.reload``);
requests in flight keep the runtime they started with. The audit writers belong to the process
(``extproc.audit.sink``) and outlive reloads.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from extproc.approval.model import Approval
from extproc.approval.store import ApprovalStore
from extproc.audit.recording import RecordingConfig
from extproc.audit.recording_files import RecordingStore
from extproc.audit.writer import AuditWriter
from extproc.clock import SYSTEM_CLOCK, Clock
from extproc.decide.pipeline import Authorizer
from extproc.exchange.machine import Exchange
from extproc.geo.locator import GeoLocator
from extproc.identity.keys import KeyStore
from extproc.masking.engine import Masker
from extproc.masking.profile import MaskingConfig
from extproc.settings import Config


class ApprovalWaiting(Protocol):
    async def wait_resolved(self, approval_id: str, timeout: float) -> Approval: ...


def new_decision_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class AuthzRuntime:
    """Everything one config needs to decide: its keys, verifier, GeoIP reader and policy."""

    config: Config
    authorizer: Authorizer
    keys: KeyStore
    locator: GeoLocator
    audit: AuditWriter | None = None
    clock: Clock = SYSTEM_CLOCK
    new_id: Callable[[], str] = new_decision_id
    url_masker: Masker | None = None  # masks the paths authz records (the default profile)

    def watched_files(self) -> list[Path]:
        files = [self.config.path]
        if self.config.geo.database is not None:
            files.append(self.config.geo.database)
        files.extend(i.jwks_file for i in self.config.identity.issuers if i.jwks_file is not None)
        return files

    def close(self) -> None:
        self.locator.close()


@dataclass(frozen=True, slots=True)
class ProcessorRuntime:
    """Everything one config needs to process exchanges: a masker per profile and the chain."""

    config: Config
    masking: MaskingConfig
    maskers: Mapping[str, Masker]
    audit: AuditWriter
    clock: Clock = SYSTEM_CLOCK
    capture_bytes: int = 0
    recordings: RecordingStore | None = None  # None: recording is off
    write_ahead: bool = True  # audit durability before_forward
    approvals: ApprovalStore | None = None  # where held requests open and find approvals
    waiter: ApprovalWaiting | None = None  # wakes a held request when its approval resolves

    def new_exchange(self) -> Exchange:
        return Exchange(
            self.masking,
            self.maskers,
            clock=self.clock,
            capture_bytes=self.capture_bytes,
            recording=self.recording,
            audit_available=self.audit.accepting(),
            approval_for=self.config.policy.approval_for,
            credential_for=self.credential_for,
            credential_headers=self.credential_headers,
        )

    @property
    def recording(self) -> RecordingConfig | None:
        return None if self.recordings is None else self.recordings.config

    @property
    def credential_headers(self) -> frozenset[str]:
        """The headers that carry the gateway's upstream credentials."""
        return frozenset(c.header for c in self.config.upstreams.credentials.values())

    def credential_for(self, name: str) -> tuple[str, str] | None:
        """The (header, value) of an upstream credential, for a request an approver released."""
        credential = self.config.upstreams.credentials.get(name)
        return None if credential is None else (credential.header, credential.value)

    def watched_files(self) -> list[Path]:
        return [self.config.path]

    def close(self) -> None:
        """The audit writer outlives a config reload; it closes when the process stops."""
