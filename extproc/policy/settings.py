"""The ``policy`` section of the config: its model, and its compile step → ``Policy``.

```yaml
policy:
  group_regions: {ml-eu: [eu]}       # which target regions each group may reach
  rules:                             # in order; the first enforced rule that matches decides
    - name: eu-team-to-eu
      when: {groups_any: [ml-eu], source_region: eu, target_region: eu}
      effect: allow
      reason: ml-eu may reach eu models from the EU
    - name: watch-us-callers
      when: {source_region: us}
      effect: deny
      enforce: false                 # dry-run: recorded, does not decide
  default: {effect: deny, reason: no rule allows this request}
  enforce: true                      # false: the whole policy in dry-run
```
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import Field

from extproc.approval.policy import ApprovalPolicy
from extproc.approval.settings import ApprovalSettings, compile_approval
from extproc.config.base import Name, Names, SettingsModel
from extproc.config.problems import Problems
from extproc.decision import Effect
from extproc.policy.conditions import ConditionContext, compile_block
from extproc.policy.engine import Policy, Rule
from extproc.policy.verdict import DEFAULT_RULE, Verdict
from extproc.policy.when import WhenSettings

_DEFAULT_STATUS: Mapping[Effect, int] = {"allow": 200, "deny": 403, "require_approval": 403}
_STATUS = "the HTTP status (default: 200 for allow, 403 otherwise; a denial's is 400-599)"


class RuleSettings(SettingsModel):
    """A rule: when its conditions all hold, it decides (or, with ``enforce: false``, records
    what it would decide)."""

    name: Name = Field(description="unique; in deny bodies, metadata and the audit trail")
    when: WhenSettings = Field(WhenSettings(), description="conditions that must all hold")
    effect: Effect = Field(description="what the rule decides")
    reason: Name | None = Field(None, description="the reason the caller reads")
    enforce: bool = Field(True, description="false: dry-run, recorded but not deciding")
    status: int | None = Field(None, ge=200, description=_STATUS)
    approval: ApprovalSettings | None = Field(
        None, description="who must approve, for effect require_approval (required then)"
    )


class DefaultSettings(SettingsModel):
    """What is decided when no enforced rule matches."""

    effect: Effect = Field("deny", description="what the default decides")
    reason: Name | None = Field(None, description="the reason the caller reads")
    status: int | None = Field(None, ge=200, description=_STATUS)
    approval: ApprovalSettings | None = Field(
        None, description="who must approve, for effect require_approval (required then)"
    )


class PolicySettings(SettingsModel):
    """Ordered rules → one decision. The first enforced rule whose conditions all hold
    decides; when none does, ``default`` does."""

    rules: tuple[RuleSettings, ...] = Field((), description="tried in order")
    default: DefaultSettings = Field(
        DefaultSettings(), description="the decision when no rule decides"
    )
    enforce: bool = Field(
        True, description="false: decide and record, but let every request through"
    )
    group_regions: dict[Name, Names] = Field(
        default_factory=dict, description="group → the target regions it may reach"
    )


def compile_policy(settings: PolicySettings, *, regions: Collection[str]) -> Policy:
    """Compile every rule; ``regions`` are the names the geo section defines."""
    problems = Problems()
    group_regions: dict[str, frozenset[str]] = {}
    for group, names in settings.group_regions.items():
        for name in names:
            if name not in regions:
                problems.add(
                    ("group_regions", group),
                    f"unknown region {name!r} (defined: {', '.join(sorted(regions)) or 'none'})",
                )
        group_regions[group] = frozenset(names)
    ctx = ConditionContext(regions=regions, group_regions=group_regions)
    rules: list[Rule] = []
    seen = {DEFAULT_RULE}
    for index, rule in enumerate(settings.rules):
        where = problems.at("rules", index)
        if rule.name in seen:
            where.add(("name",), f"rule name {rule.name!r} is used twice")
        seen.add(rule.name)
        rules.append(_rule(rule, ctx, where))
    default = settings.default
    default_status = _status(default.effect, default.status, problems.at("default"))
    default_approval = _approval(default.effect, default.approval, problems.at("default"))
    problems.check()
    return Policy(
        tuple(rules),
        Verdict(
            default.effect,
            DEFAULT_RULE,
            default.reason or _default_reason(default.effect),
            default_status,
        ),
        settings.enforce,
        group_regions,
        default_approval,
    )


def _rule(settings: RuleSettings, ctx: ConditionContext, problems: Problems) -> Rule:
    block = compile_block(settings.when, ctx, problems.at("when"))
    return Rule(
        name=settings.name,
        matches=block.matches,
        effect=settings.effect,
        reason=settings.reason or f"{settings.effect} by rule {settings.name}",
        status=_status(settings.effect, settings.status, problems),
        enforce=settings.enforce,
        conditions=block.conditions,
        approval=_approval(settings.effect, settings.approval, problems),
    )


def _approval(
    effect: Effect, settings: ApprovalSettings | None, problems: Problems
) -> ApprovalPolicy | None:
    if effect != "require_approval":
        if settings is not None:
            problems.add(("approval",), "only a require_approval rule has an approval block")
        return None
    if settings is None:
        problems.add(
            ("approval",),
            "a require_approval rule needs an approval block (who approves, how many)",
        )
        return None
    return compile_approval(settings, problems.at("approval"))


def _status(effect: Effect, status: int | None, problems: Problems) -> int:
    if status is None:
        return _DEFAULT_STATUS[effect]
    if effect != "allow" and not 400 <= status <= 599:
        problems.add(("status",), "a deny status must be between 400 and 599")
    return status


def _default_reason(effect: Effect) -> str:
    return {
        "allow": "allowed by the default policy",
        "deny": "no rule allows this request",
        "require_approval": "this request needs a human approval",
    }[effect]
