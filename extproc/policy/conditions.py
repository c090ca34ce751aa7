"""Rule conditions, compiled once at load into small objects over ``RequestFacts``.

Each condition carries its name and wanted values as written, the predicate evaluation calls, and
how to read the request's actual value, so a trace can say why a rule did not match without
evaluating anything twice in its own way. Globs are compiled to anchored regular expressions
here, so nothing is parsed per request. The syntax is described in ``extproc.policy.when``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from extproc.config.problems import Problems
from extproc.geo.model import UNKNOWN_REGION
from extproc.policy.facts import RequestFacts
from extproc.policy.trace import ConditionMiss
from extproc.policy.values import country_codes, glob_matcher, region_names, wanted_text
from extproc.policy.when import WhenSettings

Predicate = Callable[[RequestFacts], bool]
Observe = Callable[[RequestFacts], str]
NO_DECLARED_REGION = "none"
ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Condition:
    """``name`` as written (``source_region``, ``headers.x-tenant``), ``wanted`` its values as
    text, ``holds`` the compiled predicate, ``observe`` the request's value as text."""

    name: str
    wanted: str
    holds: Predicate
    observe: Observe

    def miss(self, facts: RequestFacts) -> ConditionMiss | None:
        if self.holds(facts):
            return None
        return ConditionMiss(self.name, self.observe(facts), self.wanted)


@dataclass(frozen=True, slots=True)
class Block:
    """A ``when`` block: ``matches`` holds when every condition holds."""

    conditions: tuple[Condition, ...]
    matches: Predicate

    def first_miss(self, facts: RequestFacts) -> ConditionMiss | None:
        for condition in self.conditions:
            miss = condition.miss(facts)
            if miss is not None:
                return miss
        return None

    def describe(self) -> str:
        return " and ".join(f"{c.name} {c.wanted}" for c in self.conditions) or "(always)"


@dataclass(frozen=True, slots=True)
class ConditionContext:
    """What a condition may be checked against at load time."""

    regions: Collection[str]
    group_regions: Mapping[str, frozenset[str]]


def compile_block(settings: WhenSettings, ctx: ConditionContext, problems: Problems) -> Block:
    """Compile a ``when`` block; conditions keep the model's order (cheap identity checks
    first). Problems are recorded under each condition's key."""
    conditions: list[Condition] = []
    for attribute, field in WhenSettings.model_fields.items():
        value = getattr(settings, attribute)
        if value is not None:
            key = field.alias or attribute
            conditions.extend(_compile(key, value, ctx, problems.at(key)))
    return Block(tuple(conditions), all_of([c.holds for c in conditions]))


def all_of(predicates: Sequence[Predicate]) -> Predicate:
    # Unrolled for the common sizes: a generator per call cost more than the checks it ran.
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda facts: first(facts) and second(facts)
    if len(predicates) == 3:
        first, second, third = predicates
        return lambda facts: first(facts) and second(facts) and third(facts)
    every = tuple(predicates)

    def holds(facts: RequestFacts) -> bool:
        for predicate in every:  # noqa: SIM110 - a loop, not a generator per call
            if not predicate(facts):
                return False
        return True

    return holds


def _always(_facts: RequestFacts) -> bool:
    return True


def _compile(key: str, value: object, ctx: ConditionContext, problems: Problems) -> list[Condition]:
    if isinstance(value, WhenSettings):  # not
        inner = compile_block(value, ctx, problems)
        return [
            Condition(
                key,
                f"not ({inner.describe()})",
                lambda f: not inner.matches(f),
                lambda f: "its block held",
            )
        ]
    if isinstance(value, bool):
        return [_boolean(key, value, ctx, problems)]
    if isinstance(value, dict):  # headers, route
        return [_entry(key, name, values, problems) for name, values in value.items()]
    assert isinstance(value, tuple)
    if key == "any":
        blocks = [compile_block(b, ctx, problems.at(i)) for i, b in enumerate(value)]
        predicates = [b.matches for b in blocks]
        wanted = " or ".join(f"({b.describe()})" for b in blocks)
        return [
            Condition(
                key,
                wanted,
                lambda f: any(p(f) for p in predicates),
                lambda f: "none of its blocks held",
            )
        ]
    return [_values(key, value, ctx, problems)]


def _values(
    key: str, values: tuple[str, ...], ctx: ConditionContext, problems: Problems
) -> Condition:
    wanted = wanted_text(values, "all of" if key == "groups_all" else "one of")
    if key == "subject":
        match = glob_matcher(values, problems)
        return Condition(
            key, wanted, lambda f: f.identity is not None and match(f.identity.subject), _subject
        )
    if key == "issuer":
        issuers = frozenset(values)
        return Condition(
            key, wanted, lambda f: f.identity is not None and f.identity.issuer in issuers, _issuer
        )
    if key == "groups_any":
        groups = frozenset(values)
        return Condition(
            key,
            wanted,
            lambda f: f.identity is not None and not groups.isdisjoint(f.identity.groups),
            _groups,
        )
    if key == "groups_all":
        groups = frozenset(values)
        return Condition(
            key, wanted, lambda f: f.identity is not None and groups <= f.identity.groups, _groups
        )
    if key == "source_country":
        countries = country_codes(values, problems)
        return Condition(
            key,
            wanted,
            lambda f: (f.source.country or UNKNOWN_REGION.upper()) in countries,
            lambda f: f.source.country or UNKNOWN_REGION,
        )
    if key == "source_region":
        regions = region_names(values, ctx.regions, problems, extra=UNKNOWN_REGION)
        return Condition(
            key,
            wanted,
            lambda f: (
                not regions.isdisjoint(f.source.regions)
                if f.source.regions
                else UNKNOWN_REGION in regions
            ),
            lambda f: ", ".join(f.source.regions) or UNKNOWN_REGION,
        )
    if key == "declared_region":
        regions = region_names(values, ctx.regions, problems, extra=NO_DECLARED_REGION)
        return Condition(
            key,
            wanted,
            lambda f: (f.declared_region or NO_DECLARED_REGION) in regions,
            lambda f: f.declared_region or NO_DECLARED_REGION,
        )
    if key == "target_region":
        regions = region_names(values, ctx.regions, problems, extra=UNKNOWN_REGION)
        return Condition(
            key,
            wanted,
            lambda f: (f.target_region or UNKNOWN_REGION) in regions,
            lambda f: f.target_region or UNKNOWN_REGION,
        )
    if key == "host":
        match = glob_matcher(tuple(v.lower() for v in values), problems)
        return Condition(key, wanted, lambda f: match(f.host.lower()), lambda f: f.host)
    if key == "method":
        methods = frozenset(m.upper() for m in values)
        return Condition(key, wanted, lambda f: f.method in methods, lambda f: f.method)
    if key == "path":
        match = glob_matcher(values, problems)
        return Condition(key, wanted, lambda f: match(f.path), lambda f: f.path)
    if key == "model":
        match = glob_matcher(values, problems)
        return Condition(
            key,
            wanted,
            lambda f: f.model is not None and match(f.model),
            lambda f: f.model or ABSENT,
        )
    assert key == "data_class", key
    classes = frozenset(values)
    return Condition(
        key,
        wanted,
        lambda f: f.data_class is not None and f.data_class in classes,
        lambda f: f.data_class or ABSENT,
    )


def _boolean(key: str, expected: bool, ctx: ConditionContext, problems: Problems) -> Condition:
    wanted = str(expected).lower()
    if key == "declared_region_matches_source":
        return Condition(
            key,
            wanted,
            lambda f: (
                f.declared_region is not None
                and (f.declared_region in f.source.regions) is expected
            ),
            _declared_matches,
        )
    if key == "target_region_allowed_for_groups":
        if not ctx.group_regions:
            problems.add((), "needs policy.group_regions to say which regions each group may reach")
        group_regions = ctx.group_regions
        return Condition(
            key,
            wanted,
            lambda f: _target_allowed(f, group_regions) is expected,
            lambda f: _yes_no(_target_allowed(f, group_regions)),
        )
    assert key == "authenticated", key
    return Condition(
        key,
        wanted,
        lambda f: (f.identity is not None) is expected,
        lambda f: _yes_no(f.identity is not None),
    )


def _entry(key: str, name: str, values: tuple[str, ...], problems: Problems) -> Condition:
    """One header or route extension: present and matching."""
    match = glob_matcher(values, problems.at(name))
    if key == "headers":
        if "_" in name:
            problems.at(name).add(
                (),
                "Envoy drops headers whose names hold '_' (headers_with_underscores_action), "
                "so this condition could never hold: name the header with '-'",
            )
        name = name.lower()  # the facts hold lower-case header names

        def observe(facts: RequestFacts) -> str:
            return facts.headers.get(name, ABSENT)

        def holds(facts: RequestFacts) -> bool:
            found = facts.headers.get(name)
            if found is None:
                return False
            if match(found):
                return True
            # A header sent twice reaches authz joined by Envoy ("red,red"), as does a list
            # ("text/event-stream, application/json"): the condition holds when any of its
            # values does, so a deny rule is not passed by repeating or listing a value. An
            # allow rule on a header must read one that only a trusted proxy writes.
            return "," in found and any(match(value.strip()) for value in found.split(","))
    else:

        def observe(facts: RequestFacts) -> str:
            return facts.route.get(name, ABSENT)

        def holds(facts: RequestFacts) -> bool:
            found = facts.route.get(name)
            return found is not None and match(found)

    return Condition(f"{key}.{name}", wanted_text(values, "one of"), holds, observe)


def _subject(facts: RequestFacts) -> str:
    return facts.identity.subject if facts.identity else ABSENT


def _issuer(facts: RequestFacts) -> str:
    return facts.identity.issuer if facts.identity else ABSENT


def _groups(facts: RequestFacts) -> str:
    if facts.identity is None:
        return ABSENT
    return ", ".join(sorted(facts.identity.groups)) or "none"


def _declared_matches(facts: RequestFacts) -> str:
    if facts.declared_region is None:
        return f"{ABSENT} (no declared region)"
    return _yes_no(facts.declared_region in facts.source.regions)


def _yes_no(value: bool) -> str:
    return "true" if value else "false"


def _target_allowed(facts: RequestFacts, group_regions: Mapping[str, frozenset[str]]) -> bool:
    if facts.identity is None or facts.target_region is None:
        return False
    return any(
        facts.target_region in group_regions.get(group, ()) for group in facts.identity.groups
    )
