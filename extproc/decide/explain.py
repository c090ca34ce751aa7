"""``extproc explain``: show each fact of a request and which rule decided it, and why."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

from extproc.decide.answer import Answer
from extproc.decide.pipeline import Authorizer
from extproc.decide.request import RequestView
from extproc.errors import KeyRefreshNeeded
from extproc.policy.trace import render_trace


def explain(
    authorizer: Authorizer, view: RequestView, out: TextIO, refresh_keys: Callable[[str], object]
) -> Answer:
    try:
        answer = authorizer.decide(view)
    except KeyRefreshNeeded as need:
        refresh_keys(need.issuer_name)
        answer = authorizer.decide(view, keys_refreshed=True)
    facts = answer.facts
    out.write("facts:\n")
    if facts is None:
        out.write("  (identity or facts could not be established)\n")
    else:
        identity = facts.identity
        rows: Mapping[str, object] = {
            "subject": identity.subject if identity else None,
            "issuer": identity.issuer if identity else None,
            "groups": ", ".join(sorted(identity.groups)) if identity else None,
            "source address": facts.source.address,
            "source country": facts.source.country or "unknown",
            "source regions": ", ".join(facts.source.regions) or "unknown",
            "source found in": facts.source.source,
            "declared region": facts.declared_region or "none",
            "target region": facts.target_region or "unknown",
            "host": facts.host,
            "method": facts.method,
            "path": facts.path,
            "model": facts.model,
            "data class": facts.data_class,
        }
        for name, value in rows.items():
            out.write(f"  {name + ':':<17} {value if value is not None else '-'}\n")
        out.write("rules:\n")
        policy = authorizer.policy
        for line in render_trace(policy.trace(facts), policy.default):
            out.write(f"  {line}\n")
    decision = answer.decision
    verdict = "ALLOW" if answer.allowed else f"DENY {answer.status}"
    out.write(f"decision: {verdict}\n")
    out.write(f"  rule:   {decision.rule}\n")
    out.write(f"  reason: {decision.reason}\n")
    if answer.error:
        out.write(f"  error:  {answer.error}\n")
    if not decision.enforced:
        out.write(f"  (policy in dry-run: would {decision.effect}; the request goes on)\n")
    for hit in decision.dry_run:
        out.write(f"  dry-run rule {hit.rule} would {hit.effect}: {hit.reason}\n")
    return answer
