"""Typed identity configuration (built by extproc.config from the YAML file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Asymmetric algorithms only: a shared-secret (HS*) algorithm would let anyone holding the
# issuer's public key mint tokens (algorithm confusion), and "none" is never acceptable.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted token issuer.

    Exactly one key source is set: ``discovery_url`` (OIDC discovery document whose
    ``jwks_uri`` is fetched), ``jwks_uri`` or ``jwks_file``. ``algorithms`` is fixed here and
    never taken from a token. Claim paths are dotted (``realm_access.roles``).
    """

    name: str
    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    discovery_url: str | None = None
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    leeway_seconds: float = 30.0
    subject_claim: str = "sub"
    group_claims: tuple[str, ...] = ("groups",)
    location_claim: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    issuers: tuple[IssuerConfig, ...]
    token_cache_size: int = 10_000
    jwks_min_refresh_seconds: float = 30.0
    jwks_max_age_seconds: float = 3600.0
    http_timeout_seconds: float = 5.0
