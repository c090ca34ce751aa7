"""The composition root: config → the runtime of each service. The only place that wires keys,
GeoIP, policy, masking and audit sinks together.

A runtime is immutable once built and is rebuilt whole on a config reload (``extproc.reload``);
the audit sinks outlive reloads (a writer owns its chain). Building does all the I/O a config
needs (opening and verifying the GeoIP database, reading keys), so a config that cannot serve is
refused before it replaces one that can.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extproc.approval.config import ApprovalsSettings, default_settings
from extproc.approvals.runtime import ApprovalsRuntime
from extproc.approvals.sqlite import SqliteApprovalStore
from extproc.approvals.waiter import ApprovalWaiter
from extproc.approvals.webhooks import WebhookNotifier
from extproc.audit.sink import AuditSinks
from extproc.clock import SYSTEM_CLOCK, Clock
from extproc.decide.pipeline import INFLATE_LIMITS, Authorizer
from extproc.errors import ConfigError
from extproc.geo.maxmind import open_locator
from extproc.identity.fetch import http_get_json
from extproc.identity.key_cache import KeyCache
from extproc.identity.keys import KeyStore
from extproc.identity.verifier import TokenVerifier
from extproc.masking.engine import Masker
from extproc.runtime import AuthzRuntime, ProcessorRuntime, new_decision_id
from extproc.settings import Config, load_config, parse_config

log = logging.getLogger("extproc.app")

SERVICES = ("authz", "processor", "approvals")


def build_authz(
    config: Config,
    *,
    worker: int = 0,
    sinks: AuditSinks | None = None,
    clock: Clock = SYSTEM_CLOCK,
    new_id: Callable[[], str] = new_decision_id,
    fetch_json: Callable[[str, float], Any] = http_get_json,
    load_keys: bool = True,
    previous_keys: KeyStore | None = None,
    key_cache: KeyCache | None = None,
) -> AuthzRuntime:
    locator = open_locator(config.geo)
    keys = _issuer_keys(config, fetch_json, load_keys, previous_keys, key_cache)
    # The default profile masks what authz records: paths, and the model names it refuses.
    url_masker = None
    if config.masking is not None:
        masking = config.masking
        url_masker = Masker(masking.profiles[masking.default_profile], masking.key)
    authorizer = Authorizer(
        policy=config.policy,
        regions=config.geo.regions,
        upstreams=config.upstreams,
        revision=config.revision,
        verifier=TokenVerifier(config.identity, keys, clock.wall),
        locator=locator,
        new_id=new_id,
        inflate_limits=_inflate_limits(config),
        model_masker=url_masker,
    )
    audit = None
    if sinks is not None and config.audit is not None:
        audit = sinks.writer_for(config.audit, f"authz-{worker}")
    return AuthzRuntime(config, authorizer, keys, locator, audit, clock, new_id, url_masker)


def _issuer_keys(
    config: Config,
    fetch_json: Callable[[str, float], Any],
    load: bool,
    previous: KeyStore | None,
    cache: KeyCache | None,
) -> KeyStore:
    """Every issuer's keys: fetched; else, for an issuer that is down, the previous config's
    (a reload) or the last a sibling worker fetched (a restart)."""
    keys = KeyStore(config.identity, fetch_json, cache=cache)
    if not load:
        return keys
    errors = keys.load_all()
    if previous is not None:
        for issuer in keys.adopt(previous):
            log.warning("issuer keys kept from the previous config", extra={"issuer": issuer})
    for issuer, error in errors.items():
        if error and not keys.has_keys(issuer):
            log.warning("issuer keys unavailable", extra={"issuer": issuer, "reason": error})
    return keys


def build_processor(
    config: Config, *, worker: int = 0, sinks: AuditSinks, clock: Clock = SYSTEM_CLOCK
) -> ProcessorRuntime:
    masking, audit = config.masking, config.audit
    if masking is None or audit is None:
        raise ConfigError(f"{config.path}: the processor needs 'masking' and 'audit' sections")
    maskers = {name: Masker(profile, masking.key) for name, profile in masking.profiles.items()}
    store, poll = None, 0.1
    if config.approvals is not None and _asks_for_approvals(config):
        settings = config.approvals
        store = SqliteApprovalStore(
            settings.store_path,
            busy_timeout=settings.busy_timeout_seconds,
            poll_interval=settings.poll_interval_seconds,
            change_retention=settings.change_retention_seconds,
        )
        poll = settings.poll_interval_seconds
    return ProcessorRuntime(
        config=config,
        masking=masking,
        maskers=maskers,
        audit=sinks.writer_for(audit, f"processor-{worker}"),
        clock=clock,
        capture_bytes=audit.capture_max_bytes if audit.capture_payloads else 0,
        recordings=sinks.recordings_for(audit),
        write_ahead=audit.durability == "before_forward",
        approvals=store,
        waiter=None if store is None else ApprovalWaiter(store, poll_interval=poll),
    )


def build_approvals(
    config: Config,
    *,
    worker: int = 0,
    sinks: AuditSinks | None = None,
    settings: ApprovalsSettings | None = None,
    clock: Clock = SYSTEM_CLOCK,
    fetch_json: Callable[[str, float], Any] = http_get_json,
    load_keys: bool = True,
    previous_keys: KeyStore | None = None,
    key_cache: KeyCache | None = None,
) -> ApprovalsRuntime:
    """The approvals API's runtime. ``settings`` default to the store beside the config file
    and no webhooks, until the config has an ``approvals`` section."""
    settings = settings or config.approvals or default_settings(config.path)
    keys = _issuer_keys(config, fetch_json, load_keys, previous_keys, key_cache)
    store = SqliteApprovalStore(
        settings.store_path,
        busy_timeout=settings.busy_timeout_seconds,
        poll_interval=settings.poll_interval_seconds,
        change_retention=settings.change_retention_seconds,
    )
    notifier = WebhookNotifier(
        settings.webhooks,
        queue_max=settings.webhook_queue_max,
        attempts=settings.webhook_attempts,
        backoff=settings.webhook_backoff_seconds,
        backoff_max=settings.webhook_backoff_max_seconds,
    )
    audit = None
    if sinks is not None and config.audit is not None:
        audit = sinks.writer_for(config.audit, f"approvals-{worker}")
    return ApprovalsRuntime(
        config=config,
        settings=settings,
        store=store,
        verifier=TokenVerifier(config.identity, keys, clock.wall),
        keys=keys,
        notifier=notifier,
        audit=audit,
        clock=clock,
        worker=worker,
    )


def _inflate_limits(config: Config) -> tuple[int, int]:
    """authz reads a compressed body's model within the bounds the processor masks it in."""
    masking = config.masking
    if masking is None:
        return INFLATE_LIMITS
    return masking.max_inflated_bytes, masking.max_inflate_ratio


def _asks_for_approvals(config: Config) -> bool:
    """Whether any rule can hold a request (the store is opened only then)."""
    policy = config.policy
    if policy.default_approval is not None or any(r.approval for r in policy.rules):
        return True
    masking = config.masking
    return masking is not None and any(
        rule.approval for profile in masking.profiles.values() for rule in profile.block
    )


def build(
    service: str,
    config_path: Path,
    worker: int,
    sinks: AuditSinks,
    data: bytes | None = None,
    previous: Any = None,
    keys_directory: Path | None = None,
) -> Any:
    """The runtime of ``service`` for the config at ``config_path`` (start-up and reloads), or
    for ``data``, a content of that file that validated earlier. ``keys_directory``: where the
    service's workers share the issuer keys they fetched."""
    config = load_config(config_path) if data is None else parse_config(data, config_path)
    cache = KeyCache(keys_directory) if keys_directory is not None else None
    previous_keys = getattr(previous, "keys", None)
    if not isinstance(previous_keys, KeyStore):
        previous_keys = None
    if service == "authz":
        return build_authz(
            config, worker=worker, sinks=sinks, previous_keys=previous_keys, key_cache=cache
        )
    if service == "approvals":
        return build_approvals(
            config, worker=worker, sinks=sinks, previous_keys=previous_keys, key_cache=cache
        )
    return build_processor(config, worker=worker, sinks=sinks)


def validate(service: str, config_path: Path, data: bytes | None = None) -> Config:
    """Everything a worker would refuse, checked before any worker starts (without opening
    audit chains, which belong to the workers)."""
    config = load_config(config_path) if data is None else parse_config(data, config_path)
    if service != "approvals":  # approvals never look up an address
        open_locator(config.geo).close()  # opens and verifies the GeoIP database
    if service == "processor" and (config.masking is None or config.audit is None):
        raise ConfigError(f"{config_path}: the processor needs 'masking' and 'audit' sections")
    return config
