"""The config's ``approvals`` section as a typed model, compiled into ``ApprovalsSettings``.

```yaml
approvals:
  store: approvals.db            # SQLite, shared by every process on this machine
  webhooks:
    - {url: "https://hooks.example/approvals", format: slack, secret_env: EXTPROC_HOOK_KEY}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from extproc.approval.config import ApprovalsSettings, parse_approvals_settings
from extproc.approval.settings import Duration
from extproc.config.base import FilePath, Name, SettingsModel
from extproc.config.problems import Problems
from extproc.errors import ConfigError

EventName = Literal["requested", "reviewed", "granted", "denied", "expired", "revoked"]


class WebhookSection(SettingsModel):
    url: Name = Field(description="an http(s) URL; only its host is ever logged")
    events: tuple[EventName, ...] | None = Field(None, description="default: every event")
    format: Literal["json", "slack"] = Field("json", description="the body: JSON, or Slack's")
    secret_env: Name | None = Field(None, description="signing key (>= 32 bytes) from env")
    secret_file: FilePath | None = Field(None, description="or from a file")
    timeout: Duration = Field(5, description="how long one delivery may take")


class ApprovalsSection(SettingsModel):
    """Where approvals are kept and who is told about them."""

    store: FilePath = Field("approvals.db", description="the SQLite store, beside the config")
    poll_interval: Duration = Field(0.1, description="how often held requests look for a verdict")
    busy_timeout: Duration = Field(5, description="how long a write waits for the store's lock")
    expire_interval: Duration = Field(5, description="how often expired approvals are closed")
    change_retention: Duration = Field("168h", description="how long the change feed is kept")
    webhooks: tuple[WebhookSection, ...] = Field((), description="told of approval events")
    webhook_queue_max: int = Field(1000, ge=1, description="deliveries waiting, at most")
    webhook_attempts: int = Field(6, ge=1, description="tries per delivery")
    webhook_backoff: Duration = Field(0.5, description="the first wait between tries")
    webhook_backoff_max: Duration = Field(60, description="the longest wait between tries")


def compile_approvals(section: ApprovalsSection, base_dir: Path) -> ApprovalsSettings:
    raw = section.model_dump(exclude_none=True)
    raw["webhooks"] = [
        {**hook, "events": list(hook["events"])} if "events" in hook else hook
        for hook in raw["webhooks"]
    ]
    try:
        return parse_approvals_settings(raw, base_dir)
    except ConfigError as exc:
        # Located like every other compile problem (file:line of the section).
        problems = Problems()
        problems.add((), exc.reason.removeprefix("approvals: "))
        problems.check()
        raise AssertionError("a recorded problem always raises") from exc
