"""The policy engine: ordered rules, conditions, cross-checks, dry-run and config errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import product

import pytest

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.decision import Decision
from extproc.errors import ConfigError
from extproc.geo.model import Location
from extproc.identity.model import Identity
from extproc.policy.conditions import all_of
from extproc.policy.engine import Policy
from extproc.policy.facts import RequestFacts
from extproc.policy.settings import PolicySettings, compile_policy

REGIONS = ("eu", "us", "apac")

POLICY = """
policy:
  group_regions:
    ml-eu: [eu]
    ml-us: [us]
  rules:
    - name: unknown-source
      when: {source_region: unknown}
      effect: deny
      reason: the client address maps to no known region
    - name: declared-region-mismatch
      when: {declared_region_matches_source: false}
      effect: deny
      reason: declared region differs from source region
    - name: eu-team-to-eu
      when: {groups_any: [ml-eu], source_region: eu, target_region: eu}
      effect: allow
      reason: ml-eu may reach eu from the EU
    - name: admins-need-approval
      when: {groups_all: [admin, oncall], path: "/admin/*"}
      effect: require_approval
      approval: {thresholds: {security: 1}}
    - name: target-region-not-allowed
      when: {target_region_allowed_for_groups: false}
      effect: deny
      reason: no group of the caller may reach this target
  default: {effect: deny, reason: nothing allowed it}
"""


def policy_from(text: str) -> Policy:
    return load_section(
        parse_document(text, file="policy.yaml"),
        "policy",
        PolicySettings,
        lambda settings: compile_policy(settings, regions=REGIONS),
    )


def facts(
    *,
    groups: tuple[str, ...] = ("ml-eu",),
    country: str | None = "DE",
    regions: tuple[str, ...] = ("eu",),
    target: str | None = "eu",
    declared: str | None = None,
    path: str = "/eu/v1/chat/completions",
    method: str = "POST",
) -> RequestFacts:
    identity = Identity(
        subject="alice",
        issuer="corp",
        issuer_url="https://idp.example",
        groups=frozenset(groups),
        expires_at=2e9,
    )
    source = Location("192.0.2.10", country, regions, "database" if regions else "none")
    return RequestFacts(
        identity=identity,
        source=source,
        declared_region=declared,
        target_region=target,
        host="gateway.example",
        method=method,
        path=path,
    )


def test_an_allowed_caller_is_allowed_by_the_rule_that_names_them() -> None:
    decision = policy_from(POLICY).evaluate(facts())
    assert (decision.effect, decision.rule) == ("allow", "eu-team-to-eu")
    assert decision.reason == "ml-eu may reach eu from the EU"


def test_an_unknown_source_is_denied_by_the_explicit_unknown_rule() -> None:
    decision = policy_from(POLICY).evaluate(facts(country=None, regions=()))
    assert (decision.effect, decision.rule, decision.status) == ("deny", "unknown-source", 403)


def test_a_declared_region_that_differs_from_the_source_is_denied() -> None:
    decision = policy_from(POLICY).evaluate(facts(declared="us"))
    assert decision.rule == "declared-region-mismatch"


def test_a_declared_region_equal_to_the_source_passes_the_cross_check() -> None:
    assert policy_from(POLICY).evaluate(facts(declared="eu")).rule == "eu-team-to-eu"


def test_a_target_none_of_the_callers_groups_may_reach_is_denied() -> None:
    decision = policy_from(POLICY).evaluate(facts(target="us"))
    assert (decision.effect, decision.rule) == ("deny", "target-region-not-allowed")


def test_the_default_decides_when_no_rule_matches() -> None:
    decision = policy_from(POLICY).evaluate(facts(groups=("ml-us",), regions=("us",), target="us"))
    assert (decision.effect, decision.rule, decision.reason) == (
        "deny",
        "default",
        "nothing allowed it",
    )


def test_groups_all_needs_every_group_and_path_globs_match() -> None:
    policy = policy_from(POLICY)
    both = facts(groups=("admin", "oncall", "ml-eu"), path="/admin/users", target="eu")
    one = facts(groups=("admin", "ml-eu"), path="/admin/users", target="eu", regions=("us",))
    assert policy.evaluate(both).effect == "allow"  # eu-team-to-eu comes first
    assert policy.evaluate(
        replace(both, source=Location("x", "US", ("us",), "database"))
    ).effect == ("require_approval")
    assert policy.evaluate(one).rule != "admins-need-approval"


def test_a_dry_run_rule_is_recorded_but_does_not_decide() -> None:
    policy = policy_from(
        """
policy:
  rules:
    - name: block-posts
      when: {method: POST}
      effect: deny
      enforce: false
    - name: allow-all
      effect: allow
"""
    )
    decision = policy.evaluate(facts())
    assert (decision.effect, decision.rule) == ("allow", "allow-all")
    assert [(hit.rule, hit.effect) for hit in decision.dry_run] == [("block-posts", "deny")]


def test_a_policy_in_dry_run_lets_a_denied_request_through_but_records_the_denial() -> None:
    policy = policy_from("policy:\n  enforce: false\n  rules: []\n")
    decision = policy.evaluate(facts())
    assert decision.effect == "deny"
    assert not decision.enforced
    as_decided = Decision(
        "d", "r", decision.effect, decision.rule, decision.reason, enforced=decision.enforced
    )
    assert as_decided.lets_request_through
    assert as_decided.outcome == "dry_run"


def test_not_and_any_blocks_combine_conditions() -> None:
    policy = policy_from(
        """
policy:
  rules:
    - name: eu-or-apac-but-not-fr
      when:
        any: [{source_region: eu}, {source_region: apac}]
        not: {source_country: FR}
      effect: allow
"""
    )
    assert policy.evaluate(facts(country="DE")).effect == "allow"
    assert policy.evaluate(facts(country="FR")).effect == "deny"
    assert policy.evaluate(facts(country="JP", regions=("apac",))).effect == "allow"
    assert policy.evaluate(facts(country="US", regions=("us",))).effect == "deny"


def test_headers_and_route_extensions_are_matched() -> None:
    policy = policy_from(
        """
policy:
  rules:
    - name: tenant-a-on-personal-routes
      when:
        headers: {X-Tenant: "tenant-a*"}
        route: {data_class: personal}
      effect: allow
"""
    )
    base = facts()
    matching = replace(
        base, headers={"x-tenant": "tenant-a-prod"}, route={"data_class": "personal"}
    )
    assert policy.evaluate(matching).effect == "allow"
    assert policy.evaluate(replace(matching, headers={"x-tenant": "tenant-b"})).effect == "deny"
    assert policy.evaluate(replace(matching, route={})).effect == "deny"


def test_a_header_sent_twice_cannot_pass_a_deny_rule() -> None:
    """Envoy joins a repeated header with commas: ``x-tenant: red`` twice is ``red,red``."""
    policy = policy_from(
        """
policy:
  rules:
    - name: no-red
      when: {headers: {x-tenant: red}}
      effect: deny
    - name: rest
      effect: allow
"""
    )
    for repeated in ("red", "red,red", "red, red", "blue, red", "red,blue"):
        assert policy.evaluate(replace(facts(), headers={"x-tenant": repeated})).rule == "no-red"
    for other in ("blue", "blue,green", "reddish"):
        assert policy.evaluate(replace(facts(), headers={"x-tenant": other})).rule == "rest"


def test_a_header_condition_reads_a_list_value_by_value_and_a_whole_value_whole() -> None:
    policy = policy_from(
        """
policy:
  rules:
    - name: no-streams
      when: {headers: {accept: text/event-stream}}
      effect: deny
      enforce: false
"""
    )
    listed = replace(facts(), headers={"accept": "text/event-stream, application/json"})
    verdict = policy.evaluate(listed)  # dry-run: recorded, never refused
    assert [hit.rule for hit in verdict.dry_run] == ["no-streams"]
    # A value that holds a comma and matches whole is read whole.
    ua = "Mozilla/5.0 (KHTML, like Gecko)"
    agent = policy_from(
        """
policy:
  rules:
    - {name: browsers, when: {headers: {user-agent: "*Gecko*"}}, effect: allow}
"""
    )
    assert agent.evaluate(replace(facts(), headers={"user-agent": ua})).effect == "allow"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policy:\n  rules:\n    - name: a\n      effect: permit\n",
            "policy.yaml:4: policy.rules[0].effect: expected one of allow, deny, require_approval",
        ),
        (
            "policy:\n  rules:\n    - name: a\n      effect: allow\n"
            "      when: {source_regoin: eu}\n",
            "policy.yaml:5: policy.rules[0].when: unknown key 'source_regoin'",
        ),
        (
            "policy:\n  rules:\n    - name: a\n      effect: allow\n      when:\n"
            "        target_region: [mars]\n",
            "policy.yaml:6: policy.rules[0].when.target_region: unknown region 'mars'",
        ),
        (
            "policy:\n  rules:\n    - {name: a, effect: allow}\n    - {name: a, effect: deny}\n",
            "policy.yaml:4: policy.rules[1].name: rule name 'a' is used twice",
        ),
        (
            "policy:\n  rules:\n    - name: a\n      effect: deny\n      when:\n"
            "        target_region_allowed_for_groups: false\n",
            "needs policy.group_regions",
        ),
    ],
)
def test_config_errors_name_the_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from(text)
    assert expected in caught.value.reason


def test_a_require_approval_rule_needs_its_approval_block_and_no_other_rule_has_one() -> None:
    text = (
        "policy:\n  rules:\n"
        "    - {name: a, effect: require_approval}\n"
        "    - {name: b, effect: allow, approval: {any_of: 1, approver_groups: [x]}}\n"
        "    - {name: c, effect: require_approval, approval: {any_of: 1}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        policy_from(text)
    errors = "\n".join(caught.value.errors)
    assert "policy.rules[0].approval: a require_approval rule needs an approval block" in errors
    assert "policy.rules[1].approval: only a require_approval rule has an approval block" in errors
    assert "policy.rules[2].approval: approver_groups must name at least one group" in errors


def test_a_require_approval_rule_carries_its_approval_policy() -> None:
    policy = policy_from(
        "policy:\n  rules:\n"
        "    - name: hold-it\n      effect: require_approval\n"
        "      approval: {thresholds: {security: 1, ml-leads: 1}, hold: 20s, grant_ttl: 10m}\n"
    )
    approval = policy.approval_for("hold-it")
    assert approval is not None
    assert approval.thresholds == (("ml-leads", 1), ("security", 1))
    assert (approval.hold_seconds, approval.grant_ttl_seconds) == (20.0, 600.0)
    assert policy.approval_for("nope") is None


@pytest.mark.parametrize("size", range(7))
def test_a_block_holds_exactly_when_every_condition_holds(size: int) -> None:
    """``all_of`` is unrolled for small blocks; every size and every mix of outcomes agrees
    with ``all``, and evaluation stops at the first condition that fails."""
    request = facts()
    for outcomes in product((True, False), repeat=size):
        called: list[int] = []

        def condition(
            index: int, outcome: bool, called: list[int] = called
        ) -> Callable[[RequestFacts], bool]:
            def check(_facts: RequestFacts) -> bool:
                called.append(index)
                return outcome

            return check

        block = all_of([condition(i, o) for i, o in enumerate(outcomes)])
        assert block(request) is all(outcomes)
        first_false = outcomes.index(False) if False in outcomes else size - 1
        assert called == list(range(first_false + 1)) if size else called == []


def test_a_rule_on_a_header_envoy_drops_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from(
            """
policy:
  rules:
    - {name: tenant, when: {headers: {x_tenant: red}}, effect: deny}
"""
        )
    assert "Envoy drops headers whose names hold '_'" in str(caught.value)
