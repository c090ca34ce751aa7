"""The ``identity`` section of the config → ``IdentityConfig``."""

from __future__ import annotations

from pathlib import Path

from extproc.config.node import Node
from extproc.identity.config import SUPPORTED_ALGORITHMS, IdentityConfig, IssuerConfig

_KEYS = (
    "issuers",
    "token_cache_size",
    "jwks_min_refresh_seconds",
    "jwks_max_age_seconds",
    "http_timeout_seconds",
)
_ISSUER_KEYS = (
    "name",
    "issuer",
    "discovery",
    "jwks_uri",
    "jwks_file",
    "audiences",
    "algorithms",
    "leeway_seconds",
    "subject_claim",
    "group_claims",
    "location_claim",
)
DISCOVERY_PATH = "/.well-known/openid-configuration"


def parse_identity_config(node: Node, base_dir: Path) -> IdentityConfig:
    node.reject_unknown(_KEYS)
    issuers: list[IssuerConfig] = []
    names: set[str] = set()
    urls: set[str] = set()
    issuers_node = node.child("issuers")
    for element in issuers_node.elements():
        issuer = _parse_issuer(element, base_dir)
        if issuer.name in names:
            raise element.child("name").error(f"issuer name {issuer.name!r} is used twice")
        if issuer.issuer in urls:
            raise element.child("issuer").error(f"issuer {issuer.issuer!r} is configured twice")
        names.add(issuer.name)
        urls.add(issuer.issuer)
        issuers.append(issuer)
    if not issuers:
        raise issuers_node.error(
            "at least one issuer is required (requests without one are denied)"
        )
    return IdentityConfig(
        issuers=tuple(issuers),
        token_cache_size=node.integer("token_cache_size", 10_000, minimum=0),
        jwks_min_refresh_seconds=node.number("jwks_min_refresh_seconds", 30.0, minimum=0),
        jwks_max_age_seconds=node.number("jwks_max_age_seconds", 3600.0, minimum=1),
        http_timeout_seconds=node.number("http_timeout_seconds", 5.0, minimum=0.1),
    )


def _parse_issuer(node: Node, base_dir: Path) -> IssuerConfig:
    node.reject_unknown(_ISSUER_KEYS)
    issuer = node.string("issuer")
    sources = [key for key in ("discovery", "jwks_uri", "jwks_file") if node.has(key)]
    if len(sources) != 1:
        raise node.error("set exactly one key source: discovery, jwks_uri or jwks_file")
    discovery_url = None
    if node.has("discovery"):
        value = node.child("discovery").value
        if value is True:
            discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        elif isinstance(value, str) and value:
            discovery_url = value
        else:
            raise node.child("discovery").error("expected true or the discovery document's URL")
    jwks_uri = node.optional_string("jwks_uri")
    for url in (discovery_url, jwks_uri):
        if url is not None and not url.startswith(("https://", "http://")):
            raise node.error(f"key source {url!r} must be an http(s) URL")
    algorithms = node.string_list("algorithms")
    algorithms_node = node.child("algorithms")
    for algorithm in algorithms:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise algorithms_node.error(
                f"algorithm {algorithm!r} is not allowed "
                f"(allowed: {', '.join(sorted(SUPPORTED_ALGORITHMS))})"
            )
    audiences = node.string_list("audiences")
    return IssuerConfig(
        name=node.string("name"),
        issuer=issuer,
        audiences=audiences,
        algorithms=algorithms,
        discovery_url=discovery_url,
        jwks_uri=jwks_uri,
        jwks_file=node.path_value("jwks_file", base_dir, None),
        leeway_seconds=node.number("leeway_seconds", 30.0, minimum=0),
        subject_claim=node.string("subject_claim", "sub"),
        group_claims=node.string_list("group_claims", ["groups"]),
        location_claim=node.optional_string("location_claim"),
    )
