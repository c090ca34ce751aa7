"""The ``identity`` section of the config: its model, and its compile step → ``IdentityConfig``.

```yaml
identity:
  issuers:
    - name: corp
      issuer: https://idp.example            # the exact ``iss`` of its tokens
      discovery: true                        # or jwks_uri: URL, or jwks_file: path
      audiences: [gateway]
      algorithms: [RS256]
      group_claims: [groups, realm_access.roles]
      location_claim: region
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from extproc.config.base import (
    SINGLE_AS_LIST,
    FilePath,
    Name,
    Names,
    OneOf,
    Seconds,
    SettingsModel,
    one_message,
    resolve_path,
    runtime_default,
)
from extproc.config.problems import Problems
from extproc.identity.config import SUPPORTED_ALGORITHMS, IdentityConfig, IssuerConfig

DISCOVERY_PATH = "/.well-known/openid-configuration"

Algorithm = Annotated[
    str,
    OneOf(
        tuple(sorted(SUPPORTED_ALGORITHMS)),
        "algorithm {value!r} is not allowed (asymmetric only: {allowed})",
    ),
]


class IssuerSettings(SettingsModel):
    """A trusted token issuer. Set exactly one key source: ``discovery``, ``jwks_uri`` or
    ``jwks_file``."""

    name: Name = Field(description="the issuer's name in logs, audit events and metadata")
    issuer: Name = Field(description="the exact `iss` claim of its tokens")
    discovery: Annotated[
        Literal[True] | Name | None, one_message("expected true or the discovery document's URL")
    ] = Field(
        None,
        description=f"true (the issuer's URL + {DISCOVERY_PATH}) or the OIDC discovery "
        "document's URL; its jwks_uri is fetched",
    )
    jwks_uri: Name | None = Field(None, description="the URL of the issuer's JWKS")
    jwks_file: FilePath | None = Field(None, description="a JWKS file (reloaded on change)")
    audiences: Names = Field(description="accepted `aud` values; a token needs one of them")
    algorithms: Annotated[tuple[Algorithm, ...], Field(min_length=1), SINGLE_AS_LIST] = Field(
        description="signature algorithms accepted; never taken from the token"
    )
    leeway_seconds: Seconds = Field(
        runtime_default(IssuerConfig, "leeway_seconds"),
        description="clock skew tolerated on exp, nbf and iat",
    )
    subject_claim: Name = Field(
        runtime_default(IssuerConfig, "subject_claim"), description="the claim naming the caller"
    )
    group_claims: Names = Field(
        runtime_default(IssuerConfig, "group_claims"),
        description="dotted claim paths holding the caller's groups (realm_access.roles)",
    )
    location_claim: Name | None = Field(
        None, description="a claim with the country code or region name the caller declares"
    )


class IdentitySettings(SettingsModel):
    """Who may call: the trusted issuers and how their keys are cached."""

    issuers: Annotated[tuple[IssuerSettings, ...], Field(min_length=1)] = Field(
        description="at least one issuer (requests without a valid token are denied)"
    )
    token_cache_size: int = Field(
        runtime_default(IdentityConfig, "token_cache_size"),
        ge=0,
        description="verified tokens kept until they expire",
    )
    jwks_min_refresh_seconds: Seconds = Field(
        runtime_default(IdentityConfig, "jwks_min_refresh_seconds"),
        description="the shortest time between two fetches of an issuer's keys",
    )
    jwks_max_age_seconds: float = Field(
        runtime_default(IdentityConfig, "jwks_max_age_seconds"),
        ge=1,
        description="keys are fetched again after this long",
    )
    http_timeout_seconds: float = Field(
        runtime_default(IdentityConfig, "http_timeout_seconds"),
        ge=0.1,
        description="timeout of discovery and JWKS requests",
    )


def compile_identity(settings: IdentitySettings, base_dir: Path) -> IdentityConfig:
    """Resolve key sources and check what the model alone cannot (unique names and URLs)."""
    problems = Problems()
    issuers: list[IssuerConfig] = []
    names: set[str] = set()
    urls: set[str] = set()
    for index, issuer in enumerate(settings.issuers):
        where = problems.at("issuers", index)
        if issuer.name in names:
            where.add(("name",), f"issuer name {issuer.name!r} is used twice")
        if issuer.issuer in urls:
            where.add(("issuer",), f"issuer {issuer.issuer!r} is configured twice")
        names.add(issuer.name)
        urls.add(issuer.issuer)
        issuers.append(_issuer(issuer, base_dir, where))
    problems.check()
    return IdentityConfig(
        issuers=tuple(issuers),
        token_cache_size=settings.token_cache_size,
        jwks_min_refresh_seconds=settings.jwks_min_refresh_seconds,
        jwks_max_age_seconds=settings.jwks_max_age_seconds,
        http_timeout_seconds=settings.http_timeout_seconds,
    )


def _issuer(settings: IssuerSettings, base_dir: Path, problems: Problems) -> IssuerConfig:
    sources = [s for s in (settings.discovery, settings.jwks_uri, settings.jwks_file) if s]
    if len(sources) != 1:
        problems.add((), "set exactly one key source: discovery, jwks_uri or jwks_file")
    discovery_url = settings.discovery
    if discovery_url is True:
        discovery_url = settings.issuer.rstrip("/") + DISCOVERY_PATH
        if not _is_http(settings.issuer):
            problems.add(
                ("discovery",), f"true needs an http(s) issuer URL, got {settings.issuer!r}"
            )
    elif isinstance(discovery_url, str) and not _is_http(discovery_url):
        problems.add(("discovery",), f"key source {discovery_url!r} must be an http(s) URL")
    if settings.jwks_uri is not None and not _is_http(settings.jwks_uri):
        problems.add(("jwks_uri",), f"key source {settings.jwks_uri!r} must be an http(s) URL")
    return IssuerConfig(
        name=settings.name,
        issuer=settings.issuer,
        audiences=settings.audiences,
        algorithms=settings.algorithms,
        discovery_url=discovery_url or None,
        jwks_uri=settings.jwks_uri,
        jwks_file=resolve_path(settings.jwks_file, base_dir) if settings.jwks_file else None,
        leeway_seconds=settings.leeway_seconds,
        subject_claim=settings.subject_claim,
        group_claims=settings.group_claims,
        location_claim=settings.location_claim,
    )


def _is_http(url: str) -> bool:
    return url.startswith(("https://", "http://"))
