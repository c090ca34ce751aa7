"""JWKS documents → prepared public keys by ``kid``, and the lookup the verifier reads. Pure."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import jwt

log = logging.getLogger("extproc.identity")


class KeySourceError(Exception):
    """A discovery document or JWKS could not be fetched or understood."""


class KeyLookup(Protocol):
    """The verified keys of each issuer (``extproc.identity.keys.KeyStore``, or a test's dict)."""

    def key(self, issuer_name: str, kid: str | None) -> jwt.PyJWK | None: ...

    def has_keys(self, issuer_name: str) -> bool: ...


def parse_jwks(document: Any, issuer_name: str) -> dict[str | None, jwt.PyJWK]:
    """Usable signing keys by kid. Keys for encryption, of unknown types or malformed are
    skipped with a log line; they never make the whole set unusable."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeySourceError("not a JWKS: no 'keys' list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping):
            continue
        kid = entry.get("kid")
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid if isinstance(kid, str) else None] = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.warning(
                "skipping an unusable JWK",
                extra={"issuer": issuer_name, "kid": str(kid), "reason": str(exc)},
            )
    return keys
