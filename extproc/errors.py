"""The project's small error vocabulary: stable codes as data.

Every error that can reach a caller, a log line, an audit event or a metric carries a stable
``Code``. ``CODES`` is the one table of them, with the HTTP status a caller sees when the error
ends a request and a one-line meaning; deny bodies, logs, audit events and tests all read it.
Codes are part of the public contract: add new ones, never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    # identity (401)
    MISSING_TOKEN = "missing_token"
    MALFORMED_TOKEN = "malformed_token"
    INVALID_TOKEN = "invalid_token"
    UNKNOWN_ISSUER = "unknown_issuer"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    INVALID_SIGNATURE = "invalid_signature"
    UNKNOWN_KEY = "unknown_key"
    KEYS_UNAVAILABLE = "keys_unavailable"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    INVALID_ISSUER = "invalid_issuer"
    INVALID_AUDIENCE = "invalid_audience"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    # policy (403)
    FORBIDDEN = "forbidden"
    APPROVAL_REQUIRED = "approval_required"
    PROMPT_BLOCKED = "prompt_blocked"
    NO_AUTHORIZATION_DECISION = "no_authorization_decision"
    INVALID_AUTHORIZATION_DECISION = "invalid_authorization_decision"
    MODEL_NOT_AUTHORIZED = "model_not_authorized"
    MODEL_NAME_REFUSED = "model_name_refused"
    # request content the gateway cannot inspect
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    COMPRESSED_BODY_REFUSED = "compressed_body_refused"
    INVALID_ENCODING = "invalid_encoding"
    DECOMPRESSION_LIMIT = "decompression_limit"
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    UNSUPPORTED_CHARSET = "unsupported_charset"
    BINARY_PART_REFUSED = "binary_part_refused"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    MALFORMED_MULTIPART = "malformed_multipart"
    BODY_TOO_LARGE = "body_too_large"
    MASKING_FAILED = "masking_failed"
    # answered by Envoy itself (its limits and timeouts, a service it cannot reach)
    RESPONSE_TOO_LARGE = "response_too_large"
    EXCHANGE_INCOMPLETE = "exchange_incomplete"
    REQUEST_TIMEOUT = "request_timeout"
    BAD_REQUEST = "bad_request"
    AUTHZ_UNAVAILABLE = "authz_unavailable"
    # the gateway cannot decide or record (5xx: fail closed)
    GEO_UNAVAILABLE = "geo_unavailable"
    GEO_LOOKUP_FAILED = "geo_lookup_failed"
    POLICY_ERROR = "policy_error"
    UPSTREAM_CREDENTIAL_UNAVAILABLE = "upstream_credential_unavailable"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    PROCESSING_FAILED = "processing_failed"
    INTERNAL_ERROR = "internal_error"
    # approvals: refused reviews and requests (the approvals API and the held request)
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_NOT_FOUND = "approval_not_found"
    APPROVAL_ID_MALFORMED = "approval_id_malformed"
    APPROVAL_NOT_PENDING = "approval_not_pending"
    APPROVAL_EXPIRED = "approval_expired"
    NOT_AN_APPROVER = "not_an_approver"
    SELF_APPROVAL = "self_approval"
    ALREADY_REVIEWED = "already_reviewed"
    REASON_REQUIRED = "reason_required"
    GRANT_TTL_INVALID = "grant_ttl_invalid"
    JUSTIFICATION_REQUIRED = "justification_required"
    JUSTIFICATION_TOO_LONG = "justification_too_long"
    APPROVALS_UNAVAILABLE = "approvals_unavailable"
    INVALID_APPROVAL_QUERY = "invalid_approval_query"
    # operator errors (never in a deny body)
    CONFIG_INVALID = "config_invalid"
    LISTEN_FAILED = "listen_failed"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    status: int
    meaning: str


CODES: dict[Code, CodeInfo] = {
    Code.MISSING_TOKEN: CodeInfo(401, "no bearer token was presented"),
    Code.MALFORMED_TOKEN: CodeInfo(401, "the token is not a well-formed Bearer JWT"),
    Code.INVALID_TOKEN: CodeInfo(401, "the token could not be verified"),
    Code.UNKNOWN_ISSUER: CodeInfo(401, "the token's issuer is not configured"),
    Code.ALGORITHM_NOT_ALLOWED: CodeInfo(401, "the token's algorithm is not in the fixed list"),
    Code.INVALID_SIGNATURE: CodeInfo(401, "the token's signature does not verify"),
    Code.UNKNOWN_KEY: CodeInfo(401, "the token names a key the issuer does not publish"),
    Code.KEYS_UNAVAILABLE: CodeInfo(401, "the issuer's keys could not be fetched"),
    Code.TOKEN_EXPIRED: CodeInfo(401, "the token has expired"),
    Code.TOKEN_NOT_YET_VALID: CodeInfo(401, "the token is not valid yet"),
    Code.INVALID_ISSUER: CodeInfo(401, "the token's iss claim does not match"),
    Code.INVALID_AUDIENCE: CodeInfo(401, "the token is not meant for this audience"),
    Code.MISSING_CLAIM: CodeInfo(401, "the token lacks a required claim"),
    Code.INVALID_CLAIM: CodeInfo(401, "a claim of the token has the wrong type or value"),
    Code.FORBIDDEN: CodeInfo(403, "a policy rule denies the request"),
    Code.APPROVAL_REQUIRED: CodeInfo(403, "the request needs a human approval"),
    Code.PROMPT_BLOCKED: CodeInfo(403, "the content matches a blocking rule"),
    Code.NO_AUTHORIZATION_DECISION: CodeInfo(
        403, "no authorization decision reached the processor"
    ),
    Code.INVALID_AUTHORIZATION_DECISION: CodeInfo(
        403, "the authorization decision the processor received is malformed"
    ),
    Code.MODEL_NOT_AUTHORIZED: CodeInfo(
        403, "the body names a model other than the one the request was authorized for"
    ),
    Code.MODEL_NAME_REFUSED: CodeInfo(
        403, "the model name is over 256 characters or holds a value the gateway masks"
    ),
    Code.UNSUPPORTED_ENCODING: CodeInfo(415, "the body's content encoding cannot be inspected"),
    Code.COMPRESSED_BODY_REFUSED: CodeInfo(415, "compressed bodies are refused by configuration"),
    Code.INVALID_ENCODING: CodeInfo(400, "the body's content encoding is corrupt"),
    Code.DECOMPRESSION_LIMIT: CodeInfo(413, "the body inflates beyond the configured limit"),
    Code.INVALID_JSON: CodeInfo(400, "the body is not valid JSON and the profile refuses it"),
    Code.INVALID_UTF8: CodeInfo(400, "the body is not valid UTF-8"),
    Code.UNSUPPORTED_CHARSET: CodeInfo(415, "the body's charset cannot be inspected"),
    Code.BINARY_PART_REFUSED: CodeInfo(415, "a multipart body holds a part that cannot be read"),
    Code.UNSUPPORTED_CONTENT_TYPE: CodeInfo(
        415, "the body's content type can be read more than one way"
    ),
    Code.MALFORMED_MULTIPART: CodeInfo(
        400, "a multipart body's delimiters or part headers can be read more than one way"
    ),
    Code.BODY_TOO_LARGE: CodeInfo(413, "the body is larger than the gateway inspects"),
    Code.MASKING_FAILED: CodeInfo(502, "the body could not be masked"),
    Code.RESPONSE_TOO_LARGE: CodeInfo(502, "the model's answer is larger than the gateway reads"),
    Code.EXCHANGE_INCOMPLETE: CodeInfo(
        502, "the exchange ended before the model's answer was complete"
    ),
    Code.REQUEST_TIMEOUT: CodeInfo(408, "the request was not received in time"),
    Code.BAD_REQUEST: CodeInfo(
        400, "Envoy refused the request as malformed (an escaped slash in its path, say)"
    ),
    Code.AUTHZ_UNAVAILABLE: CodeInfo(503, "the authorization service could not answer"),
    Code.GEO_UNAVAILABLE: CodeInfo(500, "the GeoIP database is unusable"),
    Code.GEO_LOOKUP_FAILED: CodeInfo(500, "the GeoIP lookup failed"),
    Code.POLICY_ERROR: CodeInfo(500, "evaluating the policy failed"),
    Code.UPSTREAM_CREDENTIAL_UNAVAILABLE: CodeInfo(
        503, "the route names an upstream credential the gateway lacks"
    ),
    Code.AUDIT_UNAVAILABLE: CodeInfo(503, "the audit trail cannot record the exchange"),
    Code.PROCESSING_FAILED: CodeInfo(500, "the processor could not inspect the exchange"),
    Code.INTERNAL_ERROR: CodeInfo(500, "the gateway could not decide the request"),
    Code.APPROVAL_DENIED: CodeInfo(403, "an approver denied the request"),
    Code.APPROVAL_NOT_FOUND: CodeInfo(404, "no approval request has this id"),
    Code.APPROVAL_ID_MALFORMED: CodeInfo(400, "the approval id is not one the gateway issues"),
    Code.APPROVAL_NOT_PENDING: CodeInfo(409, "the approval request is already resolved"),
    Code.APPROVAL_EXPIRED: CodeInfo(409, "the approval request expired before it was decided"),
    Code.NOT_AN_APPROVER: CodeInfo(403, "the reviewer is in none of the rule's approver groups"),
    Code.SELF_APPROVAL: CodeInfo(403, "the requester cannot review their own request"),
    Code.ALREADY_REVIEWED: CodeInfo(409, "the reviewer has already reviewed this request"),
    Code.REASON_REQUIRED: CodeInfo(400, "this review or revocation needs a reason"),
    Code.GRANT_TTL_INVALID: CodeInfo(
        400, "the grant TTL is not positive or exceeds the rule's cap"
    ),
    Code.JUSTIFICATION_REQUIRED: CodeInfo(400, "the rule needs a justification for the request"),
    Code.JUSTIFICATION_TOO_LONG: CodeInfo(400, "the justification is longer than the rule allows"),
    Code.APPROVALS_UNAVAILABLE: CodeInfo(503, "the approval store cannot be read or written"),
    Code.INVALID_APPROVAL_QUERY: CodeInfo(400, "the query names an unknown status or a bad limit"),
    Code.CONFIG_INVALID: CodeInfo(500, "the configuration is invalid"),
    Code.LISTEN_FAILED: CodeInfo(500, "a service could not listen on its port"),
}


def status_of(code: Code) -> int:
    return CODES[code].status


class ExtprocError(Exception):
    """Base class: a stable code, a human reason safe to show a caller, and an HTTP status."""

    code: Code = Code.INTERNAL_ERROR

    def __init__(self, reason: str, *, code: Code | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    @property
    def status(self) -> int:
        return status_of(self.code)


class ConfigError(ExtprocError):
    """The configuration is invalid. ``reason`` names file, line and key; ``errors`` lists every
    problem found, one line each."""

    code = Code.CONFIG_INVALID

    def __init__(self, reason: str, *, errors: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.errors = errors or (reason,)


class IdentityError(ExtprocError):
    """The caller's identity could not be established (401)."""

    code = Code.INVALID_TOKEN


class KeyRefreshNeeded(ExtprocError):
    """The token names a key id the issuer's cached JWKS lacks; refresh the keys, then retry.

    Raised by the sans-I/O verifier so that the adapter can do the (rate-limited) fetch off the
    request path's CPU work and retry once.
    """

    code = Code.UNKNOWN_KEY

    def __init__(self, issuer_name: str, kid: str | None) -> None:
        super().__init__(f"key {kid!r} of issuer {issuer_name!r} is not known")
        self.issuer_name = issuer_name
        self.kid = kid


class GeoError(ExtprocError):
    """A GeoIP database is unusable (refused at start or reload) or a lookup failed."""

    code = Code.GEO_UNAVAILABLE


class PolicyError(ExtprocError):
    """Evaluating the policy failed; the request is denied."""

    code = Code.POLICY_ERROR


class CredentialError(ExtprocError):
    """An upstream credential named by a route is not configured or cannot be read."""

    code = Code.UPSTREAM_CREDENTIAL_UNAVAILABLE


class AuditError(ExtprocError):
    """The audit trail cannot record: its chain is in use by another process, its files cannot be
    trusted or written, or the writer is closed. Requests that cannot be recorded are denied."""

    code = Code.AUDIT_UNAVAILABLE


class ApprovalError(ExtprocError):
    """An approval request or review is refused (unknown id, not an approver, self-approval,
    already resolved, ...), or the approval store cannot be used. ``code`` says which."""

    code = Code.APPROVALS_UNAVAILABLE


class DecisionError(ExtprocError):
    """The decision metadata the processor received is not one authz could have written."""

    code = Code.INVALID_AUTHORIZATION_DECISION
