"""The facts a policy decides on: one immutable view of a request, built by the authz adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from extproc.geo.model import Location
from extproc.identity.model import Identity


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Who (``identity``), from where (``source``, ``declared_region``), to where
    (``target_region``) and what (``method``, ``path``, ``model``, ``data_class``, ``headers``).

    ``path`` excludes the query string. ``headers`` have lower-case names. ``route`` holds the
    per-route ``context_extensions`` that SREs set in envoy.yaml. ``declared_region`` is the region
    named by the token's location claim (``None`` when the token has none).
    """

    identity: Identity | None
    source: Location
    declared_region: str | None
    target_region: str | None
    host: str
    method: str
    path: str
    model: str | None = None
    data_class: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    route: Mapping[str, str] = field(default_factory=dict)
