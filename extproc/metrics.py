"""Prometheus metrics of the services. Labels stay bounded: effect, outcome, rule, error code,
entity type, direction, chain; never a user, a token or a path.

Workers are separate processes: each writes its samples to the directory named by
``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before it starts them), and the supervisor
serves ``/metrics`` with all workers aggregated (``extproc.metrics_http``). Without that variable
(tests, ``extproc explain``) the metrics live in the process's own registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

DECISIONS = Counter(
    "extproc_authz_decisions_total",
    "Requests decided by authz, by the policy's effect, what happened, the rule and the code.",
    ["effect", "outcome", "rule", "error"],
)
CHECK_SECONDS = Histogram(
    "extproc_authz_check_duration_seconds",
    "Time to answer one Check, in the handler (gRPC transport excluded).",
    buckets=_LATENCY_BUCKETS,
)
JWKS_LOADS = Counter(
    "extproc_authz_jwks_loads_total",
    "Loads of an issuer's keys (start, periodic refresh, unknown kid), by result.",
    ["issuer", "result"],
)
EXCHANGES = Counter(
    "extproc_processor_exchanges_total",
    "Exchanges the processor saw, by what happened and the code of a refusal.",
    ["outcome", "error"],
)
EXCHANGE_SECONDS = Histogram(
    "extproc_processor_exchange_duration_seconds",
    "Time from an exchange's first message to its audit event (includes the model's time).",
    buckets=(*_LATENCY_BUCKETS, 5.0, 10.0, 30.0, 60.0, 300.0),
)
FINDINGS = Counter(
    "extproc_masking_findings_total",
    "Sensitive values found, by entity type and direction (counts only, never values).",
    ["type", "direction"],
)
BLOCKED = Counter("extproc_prompts_blocked_total", "Requests refused by a blocking rule.", ["rule"])
APPROVAL_HOLDS = Counter(
    "extproc_approval_holds_total",
    "Requests held for a human approval, by how the hold ended: released (approved or a grant), "
    "required (no decision in time), denied, refused (the request could not wait).",
    ["result"],
)
APPROVAL_HOLD_SECONDS = Histogram(
    "extproc_approval_hold_duration_seconds",
    "How long a held request waited for its approval.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0),
)
AUDIT_EVENTS = Counter(
    "extproc_audit_events_total",
    "Audit events by result: written (durable), rejected (refused by the queue policy).",
    ["chain", "result"],
)
AUDIT_WRITE_ERRORS = Counter(
    "extproc_audit_write_errors_total", "Failed audit writes (each is retried).", ["chain"]
)
AUDIT_QUEUE_DEPTH = Gauge(
    "extproc_audit_queue_depth",
    "Accepted audit events not yet durable.",
    ["chain"],
    multiprocess_mode="livesum",
)
RECORDINGS = Counter(
    "extproc_recordings_total",
    "Session recordings by result: written, failed (the closing event names the error).",
    ["result"],
)
CONFIG_RELOADS = Counter(
    "extproc_config_reloads_total", "Config reloads by result (ok, failed).", ["result"]
)
CONFIG_INFO = Gauge(
    "extproc_config_info",
    "The config revision each worker serves (1 per worker).",
    ["revision"],
    multiprocess_mode="livesum",
)

_audit_seen: dict[tuple[str, str], int] = {}


def record_findings(findings: Mapping[str, int]) -> None:
    """``findings`` as the audit event counts them: ``"request.EMAIL" -> 2``."""
    for key, count in findings.items():
        direction, _, type_ = key.partition(".")
        FINDINGS.labels(type_, direction).inc(count)


def record_audit_counters(chain: str, counters: Mapping[str, int]) -> None:
    """The writer's own counters (totals since start) turned into counter increments."""
    AUDIT_QUEUE_DEPTH.labels(chain).set(counters.get("queue_depth", 0))
    for field, result in (("written", "written"), ("rejected", "rejected")):
        _advance(AUDIT_EVENTS.labels(chain, result), (chain, field), counters.get(field, 0))
    _advance(
        AUDIT_WRITE_ERRORS.labels(chain), (chain, "write_errors"), counters.get("write_errors", 0)
    )


def _advance(counter: Counter, key: tuple[str, str], total: int) -> None:
    seen = _audit_seen.get(key, 0)
    if total > seen:
        counter.inc(total - seen)
        _audit_seen[key] = total


def serving_revision(old: str | None, new: str) -> None:
    if old is not None:
        CONFIG_INFO.labels(old).dec()
    CONFIG_INFO.labels(new).inc()
