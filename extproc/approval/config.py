"""Settings of the approvals service and its webhooks, from a plain mapping (the config's
``approvals`` section) or their defaults.

Webhook keys are read from the environment or a file, never written in the config: a webhook's
``secret_env`` or ``secret_file`` names it (at least 32 bytes). A webhook URL can itself be a
secret (Slack's carry a token in the path), so only its scheme and host are ever logged
(``WebhookSettings.shown``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from extproc.approval.model import EVENT_KINDS, EventKind
from extproc.approval.notice import NOTICE_FORMATS, NoticeFormat
from extproc.config.durations import parse_duration
from extproc.errors import ConfigError

DEFAULT_PORT = 50071
STORE_FILE = "approvals.db"
MIN_SECRET_BYTES = 32
NOTIFIED: frozenset[EventKind] = frozenset(EVENT_KINDS) - {"used"}
_KEYS = (
    "store",
    "poll_interval",
    "busy_timeout",
    "expire_interval",
    "change_retention",
    "webhooks",
    "webhook_queue_max",
    "webhook_attempts",
    "webhook_backoff",
    "webhook_backoff_max",
)
_HOOK_KEYS = ("url", "events", "format", "secret_env", "secret_file", "timeout")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    events: frozenset[EventKind] = NOTIFIED
    format: NoticeFormat = "json"
    secret: bytes = field(default=b"", repr=False)  # signs deliveries; empty: unsigned
    timeout_seconds: float = 5.0

    @property
    def shown(self) -> str:
        """The URL as logs may show it: scheme and host, never the path or query."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True, slots=True)
class ApprovalsSettings:
    store_path: Path
    poll_interval_seconds: float = 0.1
    busy_timeout_seconds: float = 5.0
    expire_interval_seconds: float = 5.0
    change_retention_seconds: float = 7 * 86400.0
    webhooks: tuple[WebhookSettings, ...] = ()
    webhook_queue_max: int = 1000
    webhook_attempts: int = 6
    webhook_backoff_seconds: float = 0.5
    webhook_backoff_max_seconds: float = 60.0


def default_settings(config_path: Path) -> ApprovalsSettings:
    """The store beside the config file (``.extproc/approvals.db`` for ``extproc up``)."""
    return ApprovalsSettings(store_path=config_path.resolve().parent / STORE_FILE)


def parse_approvals_settings(
    raw: Mapping[str, Any], base_dir: Path, env: Mapping[str, str] | None = None
) -> ApprovalsSettings:
    """Settings from the ``approvals`` section; relative paths are relative to ``base_dir``."""
    env = os.environ if env is None else env
    _reject_unknown(raw, _KEYS, "approvals")
    try:
        hooks = raw.get("webhooks", [])
        if not isinstance(hooks, list):
            raise ValueError("webhooks must be a list")
        return ApprovalsSettings(
            store_path=base_dir / str(raw.get("store", STORE_FILE)),
            poll_interval_seconds=_positive(raw, "poll_interval", 0.1),
            busy_timeout_seconds=_positive(raw, "busy_timeout", 5.0),
            expire_interval_seconds=_positive(raw, "expire_interval", 5.0),
            change_retention_seconds=_positive(raw, "change_retention", 7 * 86400.0),
            webhooks=tuple(
                _webhook(hook, f"approvals.webhooks[{i}]", base_dir, env)
                for i, hook in enumerate(hooks)
            ),
            webhook_queue_max=_whole(raw, "webhook_queue_max", 1000),
            webhook_attempts=_whole(raw, "webhook_attempts", 6),
            webhook_backoff_seconds=_positive(raw, "webhook_backoff", 0.5),
            webhook_backoff_max_seconds=_positive(raw, "webhook_backoff_max", 60.0),
        )
    except ValueError as exc:
        raise ConfigError(f"approvals: {exc}") from None


def _webhook(raw: Any, where: str, base_dir: Path, env: Mapping[str, str]) -> WebhookSettings:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a mapping")
    _reject_unknown(raw, _HOOK_KEYS, where)
    url = raw.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{where}.url must be an http or https URL")
    if not urlsplit(url).hostname:
        raise ValueError(f"{where}.url has no host")
    events = raw.get("events", sorted(NOTIFIED))
    if not isinstance(events, list) or not set(events) <= NOTIFIED or not events:
        raise ValueError(f"{where}.events must list some of {', '.join(sorted(NOTIFIED))}")
    fmt = raw.get("format", "json")
    if fmt not in NOTICE_FORMATS:
        raise ValueError(f"{where}.format must be one of {', '.join(NOTICE_FORMATS)}")
    return WebhookSettings(
        url=url,
        events=frozenset(events),
        format=fmt,
        secret=_secret(raw, where, base_dir, env),
        timeout_seconds=_positive(raw, "timeout", 5.0),
    )


def _secret(raw: Mapping[str, Any], where: str, base_dir: Path, env: Mapping[str, str]) -> bytes:
    if "secret_env" in raw and "secret_file" in raw:
        raise ValueError(f"{where}: set secret_env or secret_file, not both")
    if "secret_env" in raw:
        secret = env.get(str(raw["secret_env"]), "").encode("utf-8")
        if not secret:
            raise ValueError(f"{where}: environment variable {raw['secret_env']} is not set")
    elif "secret_file" in raw:
        path = base_dir / str(raw["secret_file"])
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"{where}: cannot read {path}: {exc.strerror}") from None
    else:
        return b""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{where}: the signing secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def _reject_unknown(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _positive(raw: Mapping[str, Any], key: str, default: float) -> float:
    seconds = parse_duration(raw.get(key, default))
    if seconds <= 0:
        raise ValueError(f"{key} must be positive")
    return seconds


def _whole(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number of at least 1")
    return value
