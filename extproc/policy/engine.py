"""Ordered rules → one Verdict. Pure and fast: everything is compiled at load.

Evaluation: rules are tried in order; the first *enforced* rule whose conditions all hold decides.
A matching rule with ``enforce: false`` does not decide: its would-be decision is recorded in
``Verdict.dry_run`` and evaluation goes on, so teams can roll out a rule and watch what it would
do. When no rule decides, ``default`` does (deny unless configured otherwise). With the policy's
own ``enforce: false`` the decision is computed and recorded as usual, but the request goes on
(``Verdict.enforced`` is false).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from extproc.approval.policy import ApprovalPolicy
from extproc.decision import DryRunHit, Effect
from extproc.policy.conditions import Condition, Predicate
from extproc.policy.facts import RequestFacts
from extproc.policy.trace import RuleTrace
from extproc.policy.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Rule:
    """``matches`` is the compiled predicate of ``conditions`` (which the trace reads)."""

    name: str
    matches: Predicate
    effect: Effect
    reason: str
    status: int
    enforce: bool = True
    conditions: tuple[Condition, ...] = ()
    approval: ApprovalPolicy | None = None  # set exactly when effect is require_approval
    verdict: Verdict = field(init=False, repr=False, compare=False)  # what it decides, built once

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "verdict", Verdict(self.effect, self.name, self.reason, self.status)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    default: Verdict
    enforce: bool = True
    group_regions: Mapping[str, frozenset[str]] | None = None
    default_approval: ApprovalPolicy | None = None

    def approval_for(self, rule: str) -> ApprovalPolicy | None:
        """The approval a ``require_approval`` verdict of ``rule`` asks for."""
        if rule == self.default.rule:
            return self.default_approval
        for candidate in self.rules:
            if candidate.name == rule:
                return candidate.approval
        return None

    def evaluate(self, facts: RequestFacts) -> Verdict:
        dry_run: list[DryRunHit] = []
        decided = self.default
        for rule in self.rules:
            if not rule.matches(facts):
                continue
            if not rule.enforce:
                dry_run.append(DryRunHit(rule.name, rule.effect, rule.reason))
                continue
            decided = rule.verdict
            break
        if not dry_run and self.enforce:
            return decided
        return Verdict(
            decided.effect,
            decided.rule,
            decided.reason,
            decided.status,
            enforced=self.enforce,
            dry_run=tuple(dry_run),
        )

    def trace(self, facts: RequestFacts) -> tuple[RuleTrace, ...]:
        """Every rule with whether it matched and, when not, the first condition that failed
        (for ``extproc explain``; ``evaluate`` never builds this)."""
        out = []
        for rule in self.rules:
            matched = rule.matches(facts)
            miss = None
            if not matched:
                miss = next(filter(None, (c.miss(facts) for c in rule.conditions)), None)
            out.append(RuleTrace(rule.name, rule.effect, rule.enforce, matched, miss))
        return tuple(out)
