"""JWT → Identity. Sans-I/O: a key the store lacks raises ``KeyRefreshNeeded`` for the caller.

Order of checks: size and shape → issuer (by the unverified ``iss``, only to pick the issuer's
configuration) → algorithm (must be one the issuer is configured for: ``none`` and HS* never
are) → key by ``kid`` (its type must fit the algorithm) → signature and claims (``exp``
required, ``nbf``, ``iat``, exact ``iss``, ``aud``, with the issuer's leeway).

Verified tokens are cached by the token string until the moment they would fail verification
(``exp`` + leeway), bounded to ``token_cache_size`` entries (oldest evicted first), and only
while the key that verified them is still the issuer's: a key the issuer withdrew (a refresh
no longer finds it) stops vouching for the tokens it signed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from extproc.errors import Code, IdentityError, KeyRefreshNeeded
from extproc.identity.config import IdentityConfig, IssuerConfig
from extproc.identity.jwks import KeyLookup
from extproc.identity.model import Identity

MAX_TOKEN_BYTES = 16 * 1024
# PyJWT's errors → our codes; order matters (subclasses first).
_JWT_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], Code, str], ...] = (
    (jwt.InvalidAudienceError, Code.INVALID_AUDIENCE, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, Code.INVALID_ISSUER, "the token's issuer does not match"),
    (jwt.MissingRequiredClaimError, Code.MISSING_CLAIM, "the token lacks a required claim"),
    (jwt.InvalidSignatureError, Code.INVALID_SIGNATURE, "the token's signature is invalid"),
    (jwt.InvalidAlgorithmError, Code.ALGORITHM_NOT_ALLOWED, "the token's algorithm is not allowed"),
    (jwt.DecodeError, Code.MALFORMED_TOKEN, "the token is not a well-formed JWT"),
)
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


class TokenVerifier:
    def __init__(
        self,
        config: IdentityConfig,
        keys: KeyLookup,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in config.issuers}
        self._keys = keys
        self._clock = clock
        self._cache_size = config.token_cache_size
        # token → (identity, valid until, the key that verified it, that key's kid)
        self._cache: dict[str, tuple[Identity, float, jwt.PyJWK, str | None]] = {}

    def verify_cached(self, token: str) -> Identity | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        identity, valid_until, key, kid = entry
        if self._clock() >= valid_until or self._keys.key(identity.issuer, kid) is not key:
            self._cache.pop(token, None)
            return None
        return identity

    def verify(self, token: str, *, refreshed: bool = False) -> Identity:
        if len(token) > MAX_TOKEN_BYTES:
            raise IdentityError("the token is too large", code=Code.MALFORMED_TOKEN)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:  # malformed, or a header this gateway cannot honour (crit)
            raise IdentityError(
                "the token is not a well-formed JWT", code=Code.MALFORMED_TOKEN
            ) from None
        named = unverified.get("iss")
        issuer = self._issuers.get(named) if isinstance(named, str) else None
        if issuer is None:
            raise IdentityError("the token's issuer is not trusted", code=Code.UNKNOWN_ISSUER)
        algorithm = header.get("alg")
        if algorithm not in issuer.algorithms:
            raise IdentityError(
                f"algorithm {algorithm!r} is not allowed for this issuer",
                code=Code.ALGORITHM_NOT_ALLOWED,
            )
        named_kid = header.get("kid")
        kid = named_kid if isinstance(named_kid, str) else None
        key = self._keys.key(issuer.name, kid)
        if key is None:
            if not refreshed:
                raise KeyRefreshNeeded(issuer.name, kid)
            if not self._keys.has_keys(issuer.name):
                raise IdentityError("the issuer's keys are unavailable", code=Code.KEYS_UNAVAILABLE)
            raise IdentityError("the token's signing key is not known", code=Code.UNKNOWN_KEY)
        if not _key_fits(key, algorithm):
            raise IdentityError(
                "the signing key does not fit the token's algorithm",
                code=Code.ALGORITHM_NOT_ALLOWED,
            )
        claims = self._decode(token, key, algorithm, issuer)
        self._check_times(claims, issuer.leeway_seconds)
        identity = self._identity(claims, issuer)
        self._remember(token, (identity, identity.expires_at + issuer.leeway_seconds, key, kid))
        return identity

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str, issuer: IssuerConfig) -> Any:
        try:
            return jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=list(issuer.audiences),
                issuer=issuer.issuer,
                # Times are checked against our own clock in _check_times.
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            for error_type, code, reason in _JWT_ERRORS:
                if isinstance(exc, error_type):
                    if isinstance(exc, jwt.MissingRequiredClaimError):
                        reason = f"the token has no {exc.claim!r} claim"
                    raise IdentityError(reason, code=code) from None
            raise IdentityError(
                f"the token is invalid: {type(exc).__name__}", code=Code.INVALID_CLAIM
            ) from None

    def _check_times(self, claims: Mapping[str, Any], leeway: float) -> None:
        now = self._clock()
        times = {}
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is None and name != "exp":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise IdentityError(f"the {name!r} claim must be a number", code=Code.INVALID_CLAIM)
            if not math.isfinite(value):  # NaN compares false to every time: it never expires
                raise IdentityError(
                    f"the {name!r} claim must be a finite number", code=Code.INVALID_CLAIM
                )
            times[name] = float(value)
        if now >= times["exp"] + leeway:
            raise IdentityError("the token has expired", code=Code.TOKEN_EXPIRED)
        if "nbf" in times and now + leeway < times["nbf"]:
            raise IdentityError("the token is not valid yet", code=Code.TOKEN_NOT_YET_VALID)
        if "iat" in times and now + leeway < times["iat"]:
            raise IdentityError("the token was issued in the future", code=Code.TOKEN_NOT_YET_VALID)

    def _identity(self, claims: Mapping[str, Any], issuer: IssuerConfig) -> Identity:
        return identity_from_claims(claims, issuer)

    def _remember(self, token: str, entry: tuple[Identity, float, jwt.PyJWK, str | None]) -> None:
        if self._cache_size <= 0:
            return
        if len(self._cache) >= self._cache_size:
            # dicts keep insertion order: drop the oldest entry
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = entry


def identity_from_claims(claims: Mapping[str, Any], issuer: IssuerConfig) -> Identity:
    """The caller the claims of a verified token describe, mapped by the issuer's config
    (subject, group and location claims). Policy tests use it on claims they write by hand."""
    subject = claim_at(claims, issuer.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise IdentityError(
            f"the token has no {issuer.subject_claim!r} claim", code=Code.MISSING_CLAIM
        )
    groups: set[str] = set()
    for path in issuer.group_claims:
        groups.update(_strings(claim_at(claims, path)))
    location = None
    if issuer.location_claim is not None:
        value = claim_at(claims, issuer.location_claim)
        if value is not None and (not isinstance(value, str) or not value):
            raise IdentityError(
                f"the {issuer.location_claim!r} claim must be a string", code=Code.INVALID_CLAIM
            )
        location = value
    return Identity(
        subject=subject,
        issuer=issuer.name,
        issuer_url=issuer.issuer,
        groups=frozenset(groups),
        expires_at=float(claims["exp"]),
        declared_location=location,
        claims=claims,
    )


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A dotted claim path (``realm_access.roles``); a claim whose name has a dot wins."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _key_fits(key: jwt.PyJWK, algorithm: str) -> bool:
    public = key.key
    if algorithm.startswith(("RS", "PS")):
        return isinstance(public, rsa.RSAPublicKey)
    if algorithm in _CURVES:
        return (
            isinstance(public, ec.EllipticCurvePublicKey)
            and public.curve.name == _CURVES[algorithm]
        )
    if algorithm == "EdDSA":
        return isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False
