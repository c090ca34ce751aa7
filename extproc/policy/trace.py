"""Why each rule did or did not match a request, as data (``Policy.trace``) and as lines.

``extproc explain`` prints it; tests read it. Evaluation itself (``Policy.evaluate``) never builds
a trace: it stays on its fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extproc.decision import Effect
from extproc.policy.verdict import DEFAULT_RULE, Verdict

_COLUMN = 32


@dataclass(frozen=True, slots=True)
class ConditionMiss:
    """The first condition of a rule that did not hold: its name (``source_region``,
    ``headers.x-tenant``, ``any``, ``not``), what the request had, and what was wanted."""

    condition: str
    actual: str
    wanted: str


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule against one request; ``miss`` is set when it did not match."""

    rule: str
    effect: Effect
    enforce: bool
    matched: bool
    miss: ConditionMiss | None = None


def describe_miss(miss: ConditionMiss) -> str:
    """``source_region is us, wanted eu``; blocks say what held instead."""
    if miss.condition in ("any", "not"):
        return f"{miss.condition}: {miss.actual}; wanted {miss.wanted}"
    return f"{miss.condition} is {miss.actual}, wanted {miss.wanted}"


def render_trace(trace: Sequence[RuleTrace], default: Verdict) -> list[str]:
    """One line per rule, in order, then the default when no enforced rule matched:
    ``eu-team-to-eu    no match: source_region is us, wanted eu``."""
    lines: list[str] = []
    decided = False
    for step in trace:
        if not step.matched:
            mark = "no match" if step.miss is None else f"no match: {describe_miss(step.miss)}"
        elif not step.enforce:
            mark = f"match (dry-run: would {step.effect})"
        elif decided:
            mark = "match (not reached)"
        else:
            mark = f"match -> {step.effect}"
            decided = True
        lines.append(f"{step.rule:<{_COLUMN}} {mark}")
    if not decided:
        lines.append(f"{DEFAULT_RULE:<{_COLUMN}} -> {default.effect}")
    return lines
