"""Upstream credentials: secrets only the gateway holds, injected into allowed requests.

Values come from an environment variable or a file, never from the config file itself, and are
never logged or returned to a client: ``UpstreamCredential.__repr__`` hides the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_STRIPPED_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key")


@dataclass(frozen=True, slots=True)
class UpstreamCredential:
    name: str
    header: str
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"UpstreamCredential(name={self.name!r}, header={self.header!r}, value=<hidden>)"


@dataclass(frozen=True, slots=True)
class Upstreams:
    """Credentials by name (routes choose one with ``context_extensions.upstream_credential``) and
    the caller headers that never reach an upstream."""

    credentials: Mapping[str, UpstreamCredential]
    strip_request_headers: tuple[str, ...] = DEFAULT_STRIPPED_HEADERS
