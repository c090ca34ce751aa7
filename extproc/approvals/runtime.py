"""What the approvals service serves with: built by ``extproc.app.build_approvals`` from the
config, replaced whole on a reload like every runtime (``extproc.reload``).

The service needs the config's identity section (approvers prove who they are with their own
OIDC token, verified like any caller's), the approval store, the webhooks and, when the config
has an ``audit`` section, an audit writer of its own chain (``approvals-<worker>``). It needs no
policy: every approval carries the policy of the rule that opened it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from extproc.approval.config import ApprovalsSettings
from extproc.approval.store import ApprovalStore
from extproc.approvals.webhooks import WebhookNotifier
from extproc.audit.writer import AuditWriter
from extproc.clock import SYSTEM_CLOCK, Clock
from extproc.identity.keys import KeyStore
from extproc.identity.verifier import TokenVerifier
from extproc.settings import Config


@dataclass(frozen=True, slots=True)
class ApprovalsRuntime:
    config: Config
    settings: ApprovalsSettings
    store: ApprovalStore
    verifier: TokenVerifier
    keys: KeyStore
    notifier: WebhookNotifier
    audit: AuditWriter | None = None
    clock: Clock = SYSTEM_CLOCK
    worker: int = 0

    def watched_files(self) -> list[Path]:
        files = [self.config.path]
        files.extend(i.jwks_file for i in self.config.identity.issuers if i.jwks_file is not None)
        return files

    def close(self) -> None:
        """Runs after a reload (once requests in flight are done) or at exit: the notifier
        finishes what is due on its own threads; the store's connections close."""
        self.notifier.close()
        self.store.close()
