"""The authorization pipeline: identity → facts (geo, target) → policy → answer.

Phase rules:
- Identity: a Bearer JWT from one of the configured issuers is required. No token → 401
  ``missing_token``; any verification failure → 401 with its code. A token signed by a key the
  cached JWKS lacks asks the caller (``KeyRefreshNeeded``) to refresh that issuer's keys once and
  decide again; the pipeline itself does no I/O.
- Facts: the source address is the one Envoy computed (never a client header); a GeoIP failure
  denies (fail closed). Target region, model, data class and credential name come from the
  route's ``context_extensions``; the model may also come from a forwarded JSON body.
- Policy: first enforced matching rule decides (see ``extproc.policy.engine``).
- Answer: allow strips caller credentials, injects the route's upstream credential and the
  decision id, and carries the decision as metadata. A route that names a credential the config
  lacks is denied (503), never forwarded without it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from extproc.audit.writer import AuditWriter
from extproc.errors import ExtprocError, GeoError, IdentityError
from extproc.geo.locator import GeoLocator
from extproc.geo.model import UNKNOWN_REGION
from extproc.identity.keys import KeyStore
from extproc.identity.model import Identity
from extproc.identity.verifier import TokenVerifier
from extproc.policy.decision import Decision
from extproc.policy.facts import RequestFacts
from extproc.settings import Config

log = logging.getLogger("extproc.authz")

DECISION_ID_HEADER = "x-extproc-decision-id"
IDENTITY_RULE = "identity"
_MAX_BODY_FOR_MODEL = 1 << 20


@dataclass(frozen=True, slots=True)
class RequestView:
    """The parts of Envoy's CheckRequest the pipeline reads, as plain values."""

    request_id: str
    method: str
    path: str
    host: str
    source_address: str
    headers: Mapping[str, str] = field(default_factory=dict)
    route: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What Envoy should do. ``error`` is the stable code of a denial (None when allowed)."""

    allowed: bool
    status: int
    decision: Decision
    request_id: str
    decision_id: str
    error: str | None = None
    set_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    www_authenticate: str | None = None
    facts: RequestFacts | None = None

    def audit_event(self, view: RequestView) -> dict[str, Any]:
        """The audit record of a request authz denied (the processor never sees those)."""
        meta = self.metadata
        return {
            "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "service": "authz",
            "request_id": self.request_id,
            "decision_id": self.decision_id,
            "decision": self.decision.effect if self.decision.enforced else "dry_run",
            "rule": self.decision.rule,
            "reason": self.error or "",
            "status": self.status,
            "subject": meta.get("subject", ""),
            "issuer": meta.get("issuer", ""),
            "groups": meta.get("groups", []),
            "source_address": view.source_address,
            "source_country": meta.get("source_country", ""),
            "source_region": meta.get("source_region", ""),
            "declared_region": meta.get("declared_region", ""),
            "target_region": meta.get("target_region", ""),
            "model": meta.get("model", ""),
            "method": view.method,
            "path": view.path,
            "policy_revision": meta.get("policy_revision", ""),
        }

    def deny_body(self) -> bytes:
        body = {
            "error": self.error,
            "reason": self.decision.reason,
            "rule": self.decision.rule,
            "request_id": self.request_id,
        }
        return orjson.dumps(body)


class AuthzRuntime:
    """Everything one config needs to serve: its keys, verifier and GeoIP reader.

    Built once per config (start-up and each reload) off the request path.
    """

    def __init__(self, config: Config, keys: KeyStore | None = None) -> None:
        self.config = config
        self.locator = GeoLocator(config.geo)
        self.keys = keys if keys is not None else KeyStore(config.identity)
        self.verifier = TokenVerifier(config.identity, self.keys)
        self.audit_writer: AuditWriter | None = None

    def load_keys(self) -> dict[str, str | None]:
        return self.keys.load_all()

    def watched_files(self) -> list[Path]:
        files = [self.config.path]
        if self.config.geo.database is not None:
            files.append(self.config.geo.database)
        files.extend(i.jwks_file for i in self.config.identity.issuers if i.jwks_file is not None)
        return files

    def close(self) -> None:
        self.locator.close()

    # -- the pipeline --------------------------------------------------------------------------
    def decide(self, view: RequestView, *, keys_refreshed: bool = False) -> Answer:
        """Decide one request. Raises ``KeyRefreshNeeded`` at most when ``keys_refreshed`` is
        false; every other failure becomes a deny."""
        decision_id = secrets.token_hex(16)
        try:
            identity = self._identity(view, keys_refreshed)
        except IdentityError as exc:
            return self._identity_denied(view, decision_id, exc)
        try:
            facts = self._facts(view, identity)
        except ExtprocError as exc:
            return self._failed(view, decision_id, exc)
        decision = self.config.policy.evaluate(facts)
        for hit in decision.dry_run:
            log.info(
                "dry-run rule matched",
                extra={"rule": hit.rule, "effect": hit.effect, "request_id": view.request_id},
            )
        if not decision.lets_request_through:
            error = "approval_required" if decision.effect == "require_approval" else "forbidden"
            return self._denied(view, decision_id, decision, error, facts)
        if not decision.enforced and decision.effect != "allow":
            log.info(
                "dry-run policy would deny",
                extra={"rule": decision.rule, "request_id": view.request_id},
            )
        return self._allowed(view, decision_id, decision, facts)

    def _identity(self, view: RequestView, keys_refreshed: bool) -> Identity:
        token = bearer_token(view.headers.get("authorization"))
        cached = self.verifier.verify_cached(token)
        if cached is not None:
            return cached
        return self.verifier.verify(token, refreshed=keys_refreshed)

    def _facts(self, view: RequestView, identity: Identity) -> RequestFacts:
        try:
            source = self.locator.locate(view.source_address)
        except ExtprocError:
            raise
        except Exception as exc:  # a corrupt database must deny, never crash the stream
            reason = f"GeoIP lookup failed: {type(exc).__name__}"
            raise GeoError(reason, code="geo_lookup_failed") from None
        route = view.route
        return RequestFacts(
            identity=identity,
            source=source,
            declared_region=self._declared_region(identity),
            target_region=route.get("target_region") or None,
            host=view.host,
            method=view.method,
            path=view.path,
            model=route.get("model") or _model_from_body(view),
            data_class=route.get("data_class") or None,
            headers=view.headers,
            route=route,
        )

    def _declared_region(self, identity: Identity) -> str | None:
        claimed = identity.declared_location
        if claimed is None:
            return None
        regions = self.config.geo.regions
        if claimed in regions:
            return claimed
        by_country = self.locator.regions_of(claimed.upper())
        return by_country[0] if by_country else UNKNOWN_REGION

    # -- answers -------------------------------------------------------------------------------
    def _allowed(
        self, view: RequestView, decision_id: str, decision: Decision, facts: RequestFacts
    ) -> Answer:
        upstreams = self.config.upstreams
        set_headers: list[tuple[str, str]] = [(DECISION_ID_HEADER, decision_id)]
        credential_name = view.route.get("upstream_credential")
        credential_header = None
        if credential_name:
            credential = upstreams.credentials.get(credential_name)
            if credential is None:
                log.error(
                    "route names an unknown upstream credential",
                    extra={"credential": credential_name, "request_id": view.request_id},
                )
                return self._failed(
                    view,
                    decision_id,
                    ExtprocError(
                        "the gateway has no credential for this route",
                        code="upstream_credential_unavailable",
                    ),
                    status=503,
                    facts=facts,
                )
            credential_header = credential.header
            set_headers.append((credential.header, credential.value))
        # A header we overwrite is not also removed: Envoy would drop the injected value.
        remove = tuple(
            h
            for h in upstreams.strip_request_headers
            if h != credential_header and h in view.headers
        )
        return Answer(
            allowed=True,
            status=200,
            decision=decision,
            request_id=view.request_id,
            decision_id=decision_id,
            set_headers=tuple(set_headers),
            remove_headers=remove,
            metadata=self._metadata(view, decision_id, decision, facts),
            facts=facts,
        )

    def _identity_denied(self, view: RequestView, decision_id: str, exc: IdentityError) -> Answer:
        decision = Decision("deny", IDENTITY_RULE, exc.reason, 401)
        if exc.code == "missing_token":
            challenge = 'Bearer realm="extproc"'
        else:
            challenge = (
                f'Bearer realm="extproc", error="invalid_token", '
                f'error_description="{_quote(exc.reason)}"'
            )
        return self._denied(view, decision_id, decision, exc.code, None, challenge)

    def _failed(
        self,
        view: RequestView,
        decision_id: str,
        exc: ExtprocError,
        *,
        status: int | None = None,
        facts: RequestFacts | None = None,
    ) -> Answer:
        decision = Decision("deny", exc.code, exc.reason, status or exc.status)
        return self._denied(view, decision_id, decision, exc.code, facts)

    def _denied(
        self,
        view: RequestView,
        decision_id: str,
        decision: Decision,
        error: str,
        facts: RequestFacts | None,
        challenge: str | None = None,
    ) -> Answer:
        return Answer(
            allowed=False,
            status=decision.status,
            decision=decision,
            request_id=view.request_id,
            decision_id=decision_id,
            error=error,
            metadata=self._metadata(view, decision_id, decision, facts),
            www_authenticate=challenge,
            facts=facts,
        )

    def _metadata(
        self,
        view: RequestView,
        decision_id: str,
        decision: Decision,
        facts: RequestFacts | None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "decision_id": decision_id,
            "request_id": view.request_id,
            "decision": decision.effect,
            "enforced": decision.enforced,
            "rule": decision.rule,
            "reason": decision.reason,
            "policy_revision": self.config.revision,
            "source_address": view.source_address,
        }
        if decision.dry_run:
            meta["dry_run"] = [
                {"rule": hit.rule, "effect": hit.effect, "reason": hit.reason}
                for hit in decision.dry_run
            ]
        if facts is None:
            return meta
        identity = facts.identity
        if identity is not None:
            meta["subject"] = identity.subject
            meta["issuer"] = identity.issuer
            meta["groups"] = sorted(identity.groups)
        meta["source_country"] = facts.source.country or UNKNOWN_REGION
        meta["source_region"] = facts.source.region
        meta["declared_region"] = facts.declared_region or ""
        meta["target_region"] = facts.target_region or ""
        if facts.model:
            meta["model"] = facts.model
        if facts.data_class:
            meta["data_class"] = facts.data_class
        profile = view.route.get("masking_profile")
        if profile:
            meta["masking_profile"] = profile
        return meta


def bearer_token(header: str | None) -> str:
    if not header:
        raise IdentityError("no bearer token was presented", code="missing_token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise IdentityError(
            "the authorization header is not a Bearer token", code="malformed_token"
        )
    return token.strip()


def _model_from_body(view: RequestView) -> str | None:
    body = view.body
    if not body or len(body) > _MAX_BODY_FOR_MODEL or not body.lstrip().startswith(b"{"):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) and model else None


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
