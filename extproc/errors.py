"""The project's small error vocabulary.

Every error that can reach a caller, a log line or a metric carries a stable ``code``. Codes are
part of the public contract: deny bodies, audit events, metrics labels and tests all use them.
``status`` is the HTTP status a caller should see when the error ends a request.
"""

from __future__ import annotations


class ExtprocError(Exception):
    """Base class: a stable code, a human reason safe to show a caller, and an HTTP status."""

    code = "internal_error"
    status = 500

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class ConfigError(ExtprocError):
    """The configuration is invalid. ``reason`` names file, line and key; ``errors`` lists every
    problem found, one line each."""

    code = "config_invalid"
    status = 500

    def __init__(self, reason: str, *, errors: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.errors = errors or (reason,)


class IdentityError(ExtprocError):
    """The caller's identity could not be established (401).

    Codes: missing_token, malformed_token, unknown_issuer, algorithm_not_allowed,
    invalid_signature, unknown_key, keys_unavailable, token_expired, token_not_yet_valid,
    invalid_issuer, invalid_audience, missing_claim, invalid_claim.
    """

    code = "invalid_token"
    status = 401


class KeyRefreshNeeded(ExtprocError):
    """The token names a key id the issuer's cached JWKS lacks; refresh the keys, then retry.

    Raised by the sans-I/O verifier so that the adapter can do the (rate-limited) fetch off the
    request path's CPU work and retry once.
    """

    code = "unknown_key"
    status = 401

    def __init__(self, issuer_name: str, kid: str | None) -> None:
        super().__init__(f"key {kid!r} of issuer {issuer_name!r} is not known")
        self.issuer_name = issuer_name
        self.kid = kid


class GeoError(ExtprocError):
    """A GeoIP database is unusable (refused at start or reload) or a lookup failed."""

    code = "geo_unavailable"
    status = 500


class PolicyError(ExtprocError):
    """Evaluating the policy failed; the request is denied."""

    code = "policy_error"
    status = 500


class CredentialError(ExtprocError):
    """An upstream credential named by a route is not configured or cannot be read."""

    code = "upstream_credential_unavailable"
    status = 503


class AuditError(ExtprocError):
    """The audit trail cannot record: its chain is in use by another process, its files cannot be
    trusted or written, or the writer is closed. Requests that cannot be recorded are denied."""

    code = "audit_unavailable"
    status = 503
