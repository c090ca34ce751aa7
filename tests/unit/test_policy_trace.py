"""The policy trace as data: per rule whether it matched and, when not, the first condition that
failed with the request's value and what was wanted; and the lines ``extproc explain`` prints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from extproc.config.document import parse_document
from extproc.config.validation import load_section
from extproc.geo.model import Location
from extproc.identity.model import Identity
from extproc.policy.engine import Policy
from extproc.policy.facts import RequestFacts
from extproc.policy.settings import PolicySettings, compile_policy
from extproc.policy.trace import ConditionMiss, RuleTrace, describe_miss, render_trace

ALICE = Identity(
    subject="alice",
    issuer="corp",
    issuer_url="https://idp.example",
    groups=frozenset({"ml-us"}),
    expires_at=2e9,
)
FROM_THE_US = RequestFacts(
    identity=ALICE,
    source=Location("198.51.100.7", "US", ("us",), "database"),
    declared_region=None,
    target_region="eu",
    host="gateway.example",
    method="POST",
    path="/eu/v1/chat/completions",
    model="gpt-4o",
    headers={"x-tenant": "tenant-b"},
    route={"data_class": "personal"},
)


def policy_from(text: str) -> Policy:
    return load_section(
        parse_document(text, file="policy.yaml"),
        "policy",
        PolicySettings,
        lambda settings: compile_policy(settings, regions=("eu", "us")),
    )


def miss_of(when: str, facts: RequestFacts = FROM_THE_US) -> ConditionMiss | None:
    policy = policy_from(
        "policy:\n  group_regions: {ml-eu: [eu]}\n"
        f"  rules:\n    - name: r\n      effect: allow\n      when: {when}\n"
    )
    (trace,) = policy.trace(facts)
    assert trace.matched is (trace.miss is None)
    return trace.miss


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{subject: 'bob*'}", "subject is alice, wanted bob*"),
        ("{issuer: [partner, vendor]}", "issuer is corp, wanted one of partner, vendor"),
        ("{groups_any: [ml-eu, admin]}", "groups_any is ml-us, wanted one of ml-eu, admin"),
        ("{groups_all: [ml-us, oncall]}", "groups_all is ml-us, wanted all of ml-us, oncall"),
        ("{source_country: DE}", "source_country is US, wanted DE"),
        ("{source_region: eu}", "source_region is us, wanted eu"),
        ("{declared_region: eu}", "declared_region is none, wanted eu"),
        ("{target_region: us}", "target_region is eu, wanted us"),
        (
            "{declared_region_matches_source: true}",
            "declared_region_matches_source is absent (no declared region), wanted true",
        ),
        (
            "{target_region_allowed_for_groups: true}",
            "target_region_allowed_for_groups is false, wanted true",
        ),
        ("{host: '*.internal'}", "host is gateway.example, wanted *.internal"),
        ("{method: [get, head]}", "method is POST, wanted one of get, head"),
        ("{path: '/us/*'}", "path is /eu/v1/chat/completions, wanted /us/*"),
        ("{model: 'claude-*'}", "model is gpt-4o, wanted claude-*"),
        ("{data_class: public}", "data_class is absent, wanted public"),
        ("{headers: {X-Tenant: 'tenant-a*'}}", "headers.x-tenant is tenant-b, wanted tenant-a*"),
        ("{headers: {X-Env: prod}}", "headers.x-env is absent, wanted prod"),
        ("{route: {data_class: public}}", "route.data_class is personal, wanted public"),
        ("{authenticated: false}", "authenticated is true, wanted false"),
        (
            "{any: [{source_region: eu}, {method: GET, path: /health}]}",
            "any: none of its blocks held; wanted (source_region eu) or "
            "(method GET and path /health)",
        ),
        ("{not: {source_country: US}}", "not: its block held; wanted not (source_country US)"),
    ],
)
def test_each_condition_kind_says_what_the_request_had_and_what_was_wanted(
    when: str, expected: str
) -> None:
    miss = miss_of(when)
    assert miss is not None
    assert describe_miss(miss) == expected


def test_the_first_failing_condition_is_named_with_its_values() -> None:
    assert miss_of("{groups_any: ml-us, source_region: eu, target_region: eu}") == (
        ConditionMiss(condition="source_region", actual="us", wanted="eu")
    )


def test_an_unauthenticated_request_misses_identity_conditions_as_absent() -> None:
    anonymous = replace(FROM_THE_US, identity=None)
    assert miss_of("{groups_any: ml-us}", anonymous) == ConditionMiss(
        "groups_any", "absent", "ml-us"
    )
    assert miss_of("{groups_any: ml-us, method: POST}") is None


def test_the_trace_agrees_with_evaluate_and_renders_as_explain_prints_it() -> None:
    policy = policy_from(
        """
policy:
  rules:
    - name: eu-team-to-eu
      when: {groups_any: [ml-eu], source_region: eu}
      effect: allow
    - name: watch-us-callers
      when: {source_region: us}
      effect: deny
      enforce: false
    - name: us-posts
      when: {source_region: us, method: POST}
      effect: deny
      reason: no posts from the US
    - name: anything-else
      effect: allow
"""
    )
    trace = policy.trace(FROM_THE_US)
    assert trace[0] == RuleTrace(
        "eu-team-to-eu", "allow", True, False, ConditionMiss("groups_any", "ml-us", "ml-eu")
    )
    assert [(t.rule, t.matched, t.enforce) for t in trace[1:]] == [
        ("watch-us-callers", True, False),
        ("us-posts", True, True),
        ("anything-else", True, True),
    ]
    assert policy.evaluate(FROM_THE_US).rule == "us-posts"
    assert render_trace(trace, policy.default) == [
        "eu-team-to-eu                    no match: groups_any is ml-us, wanted ml-eu",
        "watch-us-callers                 match (dry-run: would deny)",
        "us-posts                         match -> deny",
        "anything-else                    match (not reached)",
    ]


def test_the_default_is_rendered_when_no_enforced_rule_matches() -> None:
    policy = policy_from(
        "policy:\n  rules:\n    - {name: eu, when: {source_region: eu}, effect: allow}\n"
    )
    assert render_trace(policy.trace(FROM_THE_US), policy.default) == [
        "eu                               no match: source_region is us, wanted eu",
        "default                          -> deny",
    ]
