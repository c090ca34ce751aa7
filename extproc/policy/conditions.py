"""Rule conditions, compiled once at load into small predicates over ``RequestFacts``.

A ``when`` block holds conditions that must *all* hold. Lists mean "any of". ``any`` holds a list
of blocks of which one must hold; ``not`` holds a block that must not hold. Globs (``*``, ``?``,
``[...]``) are allowed in subject, host, path, model and header values; they are compiled to
anchored regular expressions here, so nothing is parsed per request.

``unknown`` in ``source_region`` / ``source_country`` matches a source found in no table;
``none`` in ``declared_region`` matches a token without a location claim.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from extproc.config.node import Node
from extproc.geo.model import UNKNOWN_REGION
from extproc.policy.facts import RequestFacts

Predicate = Callable[[RequestFacts], bool]

CONDITION_KEYS = (
    "subject",
    "issuer",
    "groups_any",
    "groups_all",
    "source_country",
    "source_region",
    "declared_region",
    "target_region",
    "declared_region_matches_source",
    "target_region_allowed_for_groups",
    "host",
    "method",
    "path",
    "model",
    "data_class",
    "headers",
    "route",
    "authenticated",
    "any",
    "not",
)
NO_DECLARED_REGION = "none"


@dataclass(frozen=True, slots=True)
class ConditionContext:
    """What a condition may be checked against at load time."""

    regions: Collection[str]
    group_regions: Mapping[str, frozenset[str]]


def compile_block(node: Node, ctx: ConditionContext) -> Predicate:
    """Compile a ``when`` block into one predicate (all conditions must hold)."""
    node.reject_unknown(CONDITION_KEYS)
    predicates = [_compile_condition(key, child, ctx) for key, child in node.items()]
    if not predicates:
        return _always
    if len(predicates) == 1:
        return predicates[0]
    return lambda facts: all(p(facts) for p in predicates)


def _always(_facts: RequestFacts) -> bool:
    return True


def _compile_condition(key: str, node: Node, ctx: ConditionContext) -> Predicate:
    if key == "subject":
        match = _glob_set(node, "subject")
        return lambda f: f.identity is not None and match(f.identity.subject)
    if key == "issuer":
        issuers = frozenset(string_values(node))
        return lambda f: f.identity is not None and f.identity.issuer in issuers
    if key == "groups_any":
        wanted = frozenset(string_values(node))
        return lambda f: f.identity is not None and not wanted.isdisjoint(f.identity.groups)
    if key == "groups_all":
        wanted = frozenset(string_values(node))
        return lambda f: f.identity is not None and wanted <= f.identity.groups
    if key == "source_country":
        countries = frozenset(c.upper() for c in string_values(node))
        return lambda f: (f.source.country or UNKNOWN_REGION.upper()) in countries
    if key == "source_region":
        regions = _regions(node, ctx, extra=(UNKNOWN_REGION,))
        return lambda f: (
            not regions.isdisjoint(f.source.regions)
            if f.source.regions
            else UNKNOWN_REGION in regions
        )
    if key == "declared_region":
        regions = _regions(node, ctx, extra=(NO_DECLARED_REGION,))
        return lambda f: (f.declared_region or NO_DECLARED_REGION) in regions
    if key == "target_region":
        regions = _regions(node, ctx, extra=(UNKNOWN_REGION,))
        return lambda f: (f.target_region or UNKNOWN_REGION) in regions
    if key == "declared_region_matches_source":
        expected = _boolean(node)
        return lambda f: (
            f.declared_region is not None and (f.declared_region in f.source.regions) is expected
        )
    if key == "target_region_allowed_for_groups":
        expected = _boolean(node)
        if not ctx.group_regions:
            raise node.error("needs policy.group_regions to say which regions each group may reach")
        group_regions = ctx.group_regions
        return lambda f: _target_allowed(f, group_regions) is expected
    if key == "host":
        match = _glob_set(node, "host", lower=True)
        return lambda f: match(f.host.lower())
    if key == "method":
        methods = frozenset(m.upper() for m in string_values(node))
        return lambda f: f.method in methods
    if key == "path":
        match = _glob_set(node, "path")
        return lambda f: match(f.path)
    if key == "model":
        match = _glob_set(node, "model")
        return lambda f: f.model is not None and match(f.model)
    if key == "data_class":
        classes = frozenset(string_values(node))
        return lambda f: f.data_class is not None and f.data_class in classes
    if key == "headers":
        return _compile_mapping(node, "headers", lower_keys=True)
    if key == "route":
        return _compile_mapping(node, "route", lower_keys=False)
    if key == "authenticated":
        expected = _boolean(node)
        return lambda f: (f.identity is not None) is expected
    if key == "any":
        blocks = [compile_block(element, ctx) for element in node.elements()]
        if not blocks:
            raise node.error("expected at least one condition block")
        return lambda f: any(b(f) for b in blocks)
    if key == "not":
        inner = compile_block(node, ctx)
        return lambda f: not inner(f)
    raise node.error(f"unknown condition {key!r}")  # pragma: no cover - reject_unknown guards


def _target_allowed(facts: RequestFacts, group_regions: Mapping[str, frozenset[str]]) -> bool:
    if facts.identity is None or facts.target_region is None:
        return False
    return any(
        facts.target_region in group_regions.get(group, ()) for group in facts.identity.groups
    )


def _compile_mapping(node: Node, what: str, *, lower_keys: bool) -> Predicate:
    matchers: list[tuple[str, Callable[[str], bool]]] = []
    for key, child in node.items():
        name = key.lower() if lower_keys else key
        matchers.append((name, _glob_set(child, what)))

    def predicate(facts: RequestFacts) -> bool:
        source = facts.headers if lower_keys else facts.route
        for name, match in matchers:
            value = source.get(name)
            if value is None or not match(value):
                return False
        return True

    return predicate


def string_values(node: Node) -> tuple[str, ...]:
    """A string or a non-empty list of non-empty strings."""
    if isinstance(node.value, str) and node.value:
        return (node.value,)
    if not isinstance(node.value, list) or not node.value:
        raise node.error("expected a string or a non-empty list of strings")
    out = []
    for element in node.elements():
        if not isinstance(element.value, str) or not element.value:
            raise element.error("expected a non-empty string")
        out.append(element.value)
    return tuple(out)


def _boolean(node: Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.error("expected true or false")
    return node.value


def _regions(node: Node, ctx: ConditionContext, *, extra: tuple[str, ...]) -> frozenset[str]:
    names = frozenset(string_values(node))
    known = set(ctx.regions) | set(extra)
    for name in names:
        if name not in known:
            raise node.error(
                f"unknown region {name!r} (defined: {', '.join(sorted(known)) or 'none'})"
            )
    return names


def _glob_set(node: Node, what: str, *, lower: bool = False) -> Callable[[str], bool]:
    """Exact values become one set lookup; globs become one anchored regular expression."""
    exact: set[str] = set()
    patterns: list[str] = []
    for value in string_values(node):
        value = value.lower() if lower else value
        if any(ch in value for ch in "*?["):
            patterns.append(fnmatch.translate(value))
        else:
            exact.add(value)
    if not patterns:
        frozen = frozenset(exact)
        return frozen.__contains__
    try:
        regex = re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        raise node.error(f"invalid {what} glob: {exc}") from None
    frozen = frozenset(exact)
    return lambda value: value in frozen or regex.match(value) is not None
