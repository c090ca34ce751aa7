"""Approval ids, request digests and grant scope keys.

An id is ``apr_`` and 22 URL-safe characters (128 random bits): unguessable, so knowing one
proves nothing, and checked by shape before any lookup so a malformed id never reaches the
store. The request digest binds an approval to the exact request that was approved: method,
path, model and the canonical body (JSON re-serialised with sorted keys and no whitespace, so
the same request sent with different formatting has the same digest; any other body as its
bytes). Each part is length-prefixed, so no two different requests share the input.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets

import orjson

from extproc.approval.model import Target
from extproc.approval.policy import ApprovalPolicy, Scope
from extproc.decision import bounded_model
from extproc.errors import ApprovalError, Code

ID_PREFIX = "apr_"
_ID = re.compile(r"apr_[A-Za-z0-9_-]{22}")
_MAX_SHOWN = 40


def new_approval_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(16)


def check_approval_id(text: str) -> str:
    """``text`` if it has the shape of an approval id, else ``approval_id_malformed``."""
    if not isinstance(text, str) or _ID.fullmatch(text) is None:
        shown = text[:_MAX_SHOWN] if isinstance(text, str) else type(text).__name__
        raise ApprovalError(
            f"{shown!r} is not an approval id (apr_ and 22 letters, digits, - or _)",
            code=Code.APPROVAL_ID_MALFORMED,
        )
    return text


def canonical_body(body: bytes | None) -> bytes:
    """A JSON body with sorted keys and no insignificant whitespace; other bodies as sent.

    A body with a repeated member name is taken as sent: parsers differ on which occurrence
    they keep, and a canonical form keeping one would let a body whose other occurrence says
    something else pass for the one approvers saw."""
    if not body:
        return b""
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body  # not JSON after all (or numbers orjson cannot hold): the bytes decide
        if _has_repeated_names(body):
            return body
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return body
    return body


def _has_repeated_names(body: bytes) -> bool:
    """Whether any object of this JSON (which orjson parsed) repeats a member name."""

    def members(pairs: list[tuple[str, object]]) -> None:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise _Repeated

    try:
        json.loads(body, object_pairs_hook=members)
    except _Repeated:
        return True
    except (ValueError, RecursionError):
        return True  # orjson read it and json does not: take no chance, the bytes decide
    return False


class _Repeated(Exception):
    pass


def request_digest(method: str, path: str, model: str, body: bytes | None) -> str:
    """The SHA-256 (hex) of one request as approvers saw it."""
    return _digest(
        b"extproc.approval.request.v1", method.upper(), path, model, canonical_body(body)
    )


def scope_key(
    scope: Scope, *, rule: str, issuer: str, route: str, model: str, request_digest: str
) -> str:
    """What a grant matches on, with the subject: for ``request`` scope the exact request, for
    ``route`` scope any request of the route and model. The rule and the requester's issuer are
    part of it, so a grant under one rule or one identity provider never opens another."""
    if scope == "request":
        return _digest(b"extproc.approval.scope.request.v1", rule, issuer, request_digest)
    return _digest(b"extproc.approval.scope.route.v1", rule, issuer, route, model)


def _digest(domain: bytes, *parts: str | bytes) -> str:
    digest = hashlib.sha256(domain)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def request_target(
    policy: ApprovalPolicy,
    *,
    rule: str,
    issuer: str,
    method: str,
    path: str,
    route: str,
    model: str,
    target_region: str,
    body: bytes | None,
) -> Target:
    """The ``Target`` of one request under a rule: its digest and the scope key a grant for it
    is found by (``path`` without its query string; ``route`` the route's name)."""
    digest = request_digest(method, path, model, body)
    key = scope_key(
        policy.scope, rule=rule, issuer=issuer, route=route, model=model, request_digest=digest
    )
    # The digest and scope key cover the whole name; the record holds it bounded.
    return Target(method.upper(), path, route, bounded_model(model), target_region, digest, key)
