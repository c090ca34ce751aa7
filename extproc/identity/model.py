"""The verified caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller whose token was verified against its issuer's keys.

    ``issuer`` is the configured issuer *name* (stable in rules and logs); ``issuer_url`` is the
    token's ``iss``. ``declared_location`` is the raw value of the issuer's configured location
    claim, if the token has one. ``expires_at`` is the token's ``exp`` (epoch seconds).
    """

    subject: str
    issuer: str
    issuer_url: str
    groups: frozenset[str]
    expires_at: float
    declared_location: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
