"""Ordered rules → one Verdict. Pure and fast: everything is compiled at load.

Evaluation: rules are tried in order; the first *enforced* rule whose conditions all hold decides.
A matching rule with ``enforce: false`` does not decide: its would-be decision is recorded in
``Verdict.dry_run`` and evaluation goes on, so teams can roll out a rule and watch what it would
do. When no rule decides, ``default`` does (deny unless configured otherwise). With the policy's
own ``enforce: false`` the decision is computed and recorded as usual, but the request goes on
(``Verdict.enforced`` is false).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from extproc.config.node import Node
from extproc.decision import EFFECTS, DryRunHit, Effect
from extproc.policy.conditions import ConditionContext, Predicate, compile_block, string_values
from extproc.policy.facts import RequestFacts
from extproc.policy.verdict import DEFAULT_RULE, Verdict

_RULE_KEYS = ("name", "when", "effect", "reason", "enforce", "status")
_POLICY_KEYS = ("rules", "default", "enforce", "group_regions")
_DEFAULT_STATUS: Mapping[Effect, int] = {"allow": 200, "deny": 403, "require_approval": 403}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    matches: Predicate
    effect: Effect
    reason: str
    status: int
    enforce: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    default: Verdict
    enforce: bool = True
    group_regions: Mapping[str, frozenset[str]] | None = None

    def evaluate(self, facts: RequestFacts) -> Verdict:
        dry_run: list[DryRunHit] = []
        decided = self.default
        for rule in self.rules:
            if not rule.matches(facts):
                continue
            if not rule.enforce:
                dry_run.append(DryRunHit(rule.name, rule.effect, rule.reason))
                continue
            decided = Verdict(rule.effect, rule.name, rule.reason, rule.status)
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

    def trace(self, facts: RequestFacts) -> list[tuple[Rule, bool]]:
        """Every rule with whether its conditions hold (for ``extproc explain``)."""
        return [(rule, rule.matches(facts)) for rule in self.rules]


def parse_policy_config(node: Node, *, regions: Collection[str]) -> Policy:
    node.reject_unknown(_POLICY_KEYS)
    group_regions = _parse_group_regions(node.child("group_regions", {}), regions)
    ctx = ConditionContext(regions=regions, group_regions=group_regions)
    default_node = node.child("default", {"effect": "deny"})
    default_node.reject_unknown(("effect", "reason", "status"))
    default_effect = _effect(default_node)
    default = Verdict(
        default_effect,
        DEFAULT_RULE,
        default_node.string("reason", _default_reason(default_effect)),
        default_node.integer("status", _DEFAULT_STATUS[default_effect], minimum=200),
    )
    rules: list[Rule] = []
    seen: set[str] = set()
    for rule_node in node.child("rules", []).elements():
        rule = _parse_rule(rule_node, ctx)
        if rule.name in seen or rule.name == DEFAULT_RULE:
            raise rule_node.child("name").error(f"rule name {rule.name!r} is used twice")
        seen.add(rule.name)
        rules.append(rule)
    return Policy(tuple(rules), default, node.boolean("enforce", True), group_regions)


def _parse_rule(node: Node, ctx: ConditionContext) -> Rule:
    node.reject_unknown(_RULE_KEYS)
    name = node.string("name")
    effect = _effect(node)
    status = node.integer("status", _DEFAULT_STATUS[effect], minimum=200)
    if effect != "allow" and not 400 <= status <= 599:
        raise node.child("status").error("a deny status must be between 400 and 599")
    return Rule(
        name=name,
        matches=compile_block(node.child("when", {}), ctx),
        effect=effect,
        reason=node.string("reason", _default_reason(effect, name)),
        status=status,
        enforce=node.boolean("enforce", True),
    )


def _effect(node: Node) -> Effect:
    value = node.choice("effect", EFFECTS)
    for effect in EFFECTS:
        if effect == value:
            return effect
    raise node.error("unreachable")  # pragma: no cover


def _default_reason(effect: Effect, rule: str = DEFAULT_RULE) -> str:
    if rule == DEFAULT_RULE:
        return {
            "allow": "allowed by the default policy",
            "deny": "no rule allows this request",
            "require_approval": "this request needs a human approval",
        }[effect]
    return f"{effect} by rule {rule}"


def _parse_group_regions(node: Node, regions: Collection[str]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for group, child in node.items():
        values = string_values(child)
        for value in values:
            if value not in regions:
                raise child.error(
                    f"unknown region {value!r} (defined: {', '.join(sorted(regions))})"
                )
        out[group] = frozenset(values)
    return out
