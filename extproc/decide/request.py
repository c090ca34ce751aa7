"""The parts of a request the decision pipeline reads, as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestView:
    """``source_address`` is the client address Envoy computed; ``path`` has no query string;
    ``headers`` have lower-case names; ``route`` holds the route's ``context_extensions``."""

    request_id: str
    method: str
    path: str
    host: str
    source_address: str
    headers: Mapping[str, str] = field(default_factory=dict)
    route: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
