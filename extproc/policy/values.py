"""Condition values compiled at load: globs into matchers, region names and country codes
checked against what is defined, wanted values as the trace shows them."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection

from extproc.config.problems import Problems
from extproc.geo.model import UNKNOWN_REGION
from extproc.geo.settings import is_country_code


def wanted_text(values: tuple[str, ...], several: str) -> str:
    return values[0] if len(values) == 1 else f"{several} {', '.join(values)}"


def country_codes(values: tuple[str, ...], problems: Problems) -> frozenset[str]:
    for value in values:
        if value.lower() != UNKNOWN_REGION and not is_country_code(value):
            problems.add(
                (), f"expected an ISO 3166-1 alpha-2 country code or unknown, got {value!r}"
            )
    return frozenset(v.upper() for v in values)


def region_names(
    values: tuple[str, ...], regions: Collection[str], problems: Problems, *, extra: str
) -> frozenset[str]:
    known = {*regions, extra}
    for name in values:
        if name not in known:
            problems.add((), f"unknown region {name!r} (defined: {', '.join(sorted(known))})")
    return frozenset(values)


def glob_matcher(values: tuple[str, ...], problems: Problems) -> Callable[[str], bool]:
    """Exact values become one set lookup; globs become one anchored regular expression."""
    exact = frozenset(v for v in values if not any(ch in v for ch in "*?["))
    patterns = [fnmatch.translate(v) for v in values if v not in exact]
    if not patterns:
        return exact.__contains__
    try:
        regex = re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        problems.add((), f"invalid glob: {exc}")
        return exact.__contains__
    return lambda value: value in exact or regex.match(value) is not None
