"""How a servicer tells the span of its RPC what it decided, without knowing about tracing.

The tracing interceptor opens a notes mapping for each RPC it traces; the servicer reports its
result (the decision it answered with, the audit event of an exchange) through ``note_decision``
and ``note_exchange``, which turn it into span attributes. With tracing off no interceptor runs,
no notes are open and each call is one context-variable lookup. This module imports nothing of
OpenTelemetry.

What may become an attribute is chosen here, once: the effect, outcome, rule, error code, regions,
decision id and counts of findings by type. Never a token, a subject, a claim, an address, a
path, a header value or any body content.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from extproc.decision import Decision

AttributeValue = str | int | bool
Notes = dict[str, AttributeValue]

# Set by the interceptor in each traced RPC's own context (grpc.aio gives every RPC a fresh one).
_NOTES: ContextVar[Notes | None] = ContextVar("extproc_span_notes", default=None)


def open_notes() -> Notes:
    """A fresh notes mapping for the RPC running in the current context."""
    notes: Notes = {}
    _NOTES.set(notes)
    return notes


def note_decision(decision: Decision) -> None:
    """authz: the decision it answered with."""
    notes = _NOTES.get()
    if notes is None:
        return
    notes.update(_decision_attributes(decision))


def note_exchange(event: Mapping[str, Any]) -> None:
    """The processor: the audit event its exchange ended with (the same values the trail holds,
    minus everything that could identify a person or carry content)."""
    notes = _NOTES.get()
    if notes is None:
        return
    for key in ("effect", "outcome", "rule", "decision_id", "source_region", "target_region"):
        value = event.get(key)
        if isinstance(value, str) and value:
            notes[f"extproc.{key}"] = value
    if error := event.get("error"):
        notes["extproc.error_code"] = str(error)
    if isinstance(status := event.get("status"), int):
        notes["extproc.http_status"] = status
    findings = event.get("findings") or {}
    for name, count in findings.items():  # "request.email" -> 2: a count, never the value
        notes[f"extproc.findings.{name}"] = int(count)
    if findings:
        notes["extproc.findings.total"] = sum(int(count) for count in findings.values())


def _decision_attributes(decision: Decision) -> Notes:
    attributes: Notes = {
        "extproc.effect": decision.effect,
        "extproc.outcome": decision.outcome,
        "extproc.rule": decision.rule,
        "extproc.decision_id": decision.decision_id,
        "extproc.enforced": decision.enforced,
    }
    if decision.error is not None:
        attributes["extproc.error_code"] = str(decision.error)
        attributes["extproc.http_status"] = decision.status
    if decision.source_region:
        attributes["extproc.source_region"] = decision.source_region
    if decision.target_region:
        attributes["extproc.target_region"] = decision.target_region
    return attributes
