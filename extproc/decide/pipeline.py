"""The authorization pipeline: identity → facts (geo, target) → policy → answer.

Phase rules:
- Identity: a Bearer JWT from one of the configured issuers is required. No token → 401
  ``missing_token``; any verification failure → 401 with its code. A token signed by a key the
  cached JWKS lacks asks the caller (``KeyRefreshNeeded``) to refresh that issuer's keys once and
  decide again; the pipeline itself does no I/O.
- Facts: the source address is the one Envoy computed (never a client header); a GeoIP failure
  denies (fail closed). Target region, model, data class and credential name come from the
  route's ``context_extensions``; the model may also come from the forwarded body, read as the
  upstream will read it (``extproc.requested_model``). A body Envoy cut short
  (``x-envoy-auth-partial-body: true``), or one that cannot be decoded or parsed, names no model
  the rules can see; the processor then refuses it if it names one after all.
- The model name: one over ``MAX_MODEL_CHARS`` characters, or one the deployment's masking
  would change (it holds an e-mail address, a card number, ...), is refused with 403
  ``model_name_refused`` before any rule runs. So the model a decision carries into metadata,
  the audit trail and an approval is bounded and holds nothing masking hides, and the
  processor can still compare it with the body's as it is. The refusal itself records the
  name masked, then cut to ``MAX_MODEL_CHARS`` with ``MODEL_CUT_MARKER``.
- Policy: the first enforced matching rule decides (see ``extproc.policy.engine``).
- Answer: allow strips caller credentials, injects the route's upstream credential and the
  decision id, and carries the decision on as metadata. A route that names a credential the
  config lacks is denied (503), never forwarded without it.
Every path returns an ``Answer``; only ``KeyRefreshNeeded`` escapes, by design.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from extproc.credentials import Upstreams
from extproc.decide.answer import DECISION_ID_HEADER, Answer
from extproc.decide.request import RequestView
from extproc.decision import (
    MAX_MODEL_CHARS,
    NO_OBLIGATIONS,
    Decision,
    Obligations,
    bounded_model,
)
from extproc.errors import Code, ExtprocError, GeoError, IdentityError, status_of
from extproc.geo.locator import GeoLocator
from extproc.geo.model import UNKNOWN_REGION
from extproc.identity.model import Identity
from extproc.identity.verifier import TokenVerifier
from extproc.masking.engine import Masker
from extproc.policy.engine import Policy
from extproc.policy.facts import RequestFacts
from extproc.policy.verdict import Verdict
from extproc.requested_model import model_to_decide

_VERSION_LIKE = frozenset({"IPV4", "IPV6", "MAC_ADDRESS"})
log = logging.getLogger("extproc.authz")

IDENTITY_RULE = "identity"
PARTIAL_BODY_HEADER = "x-envoy-auth-partial-body"  # Envoy's: "true" when it sent only a part
# A compressed body is read for its model within these bounds, the masking defaults (the config's
# own, when it has a masking section): what inflates further names no model authz can see.
INFLATE_LIMITS = (16 * 1024 * 1024, 100)


class Authorizer:
    """Decides requests for one config. Built once per config by the composition root."""

    def __init__(
        self,
        *,
        policy: Policy,
        regions: Mapping[str, frozenset[str]],
        upstreams: Upstreams,
        revision: str,
        verifier: TokenVerifier,
        locator: GeoLocator,
        new_id: Callable[[], str],
        inflate_limits: tuple[int, int] = INFLATE_LIMITS,
        model_masker: Masker | None = None,
    ) -> None:
        self.policy = policy
        self._model_masker = model_masker  # the deployment's masking (its default profile)
        self._inflate_limits = inflate_limits
        self._regions = regions
        self._upstreams = upstreams
        self._revision = revision
        self._verifier = verifier
        self._locator = locator
        self._new_id = new_id

    def decide(self, view: RequestView, *, keys_refreshed: bool = False) -> Answer:
        """Decide one request. Raises ``KeyRefreshNeeded`` only when ``keys_refreshed`` is
        false; every other failure becomes a deny."""
        decision_id = self._new_id()
        try:
            identity = self._identity(view, keys_refreshed)
        except IdentityError as exc:
            return self._identity_denied(view, decision_id, exc)
        return self.decide_identified(view, identity, decision_id)

    def decide_identified(
        self, view: RequestView, identity: Identity, decision_id: str | None = None
    ) -> Answer:
        """The phases after identity, for a caller already established (policy tests give
        claims instead of tokens)."""
        decision_id = decision_id or self._new_id()
        try:
            facts = self.facts(view, identity)
        except ExtprocError as exc:
            return self._failed(view, decision_id, exc.code, exc.reason, None)
        refused = self._refused_model(facts.model)
        if refused is not None:
            reason, recorded = refused
            facts = replace(facts, model=recorded)
            return self._failed(view, decision_id, Code.MODEL_NAME_REFUSED, reason, facts)
        verdict = self.policy.evaluate(facts)
        for hit in verdict.dry_run:
            log.info(
                "dry-run rule matched",
                extra={"rule": hit.rule, "effect": hit.effect, "request_id": view.request_id},
            )
        if verdict.effect == "require_approval" and verdict.enforced:
            return self._held(view, decision_id, verdict, facts)
        if verdict.effect != "allow" and verdict.enforced:
            decision = self._decision(view, decision_id, verdict, facts, Code.FORBIDDEN)
            return Answer(decision, facts=facts)
        if verdict.effect != "allow":
            log.info(
                "dry-run policy would stop this request",
                extra={"rule": verdict.rule, "request_id": view.request_id},
            )
        return self._allowed(view, decision_id, verdict, facts)

    def facts(self, view: RequestView, identity: Identity | None) -> RequestFacts:
        try:
            source = self._locator.locate(view.source_address)
        except ExtprocError:
            raise
        except Exception as exc:  # a corrupt database must deny, never crash the stream
            # What went wrong is for the operator's log; the caller gets a fixed reason.
            log.error(
                "GeoIP lookup failed", extra={"reason": str(exc), "error_type": type(exc).__name__}
            )
            raise GeoError("GeoIP lookup failed", code=Code.GEO_LOOKUP_FAILED) from None
        route = view.route
        return RequestFacts(
            identity=identity,
            source=source,
            declared_region=self._declared_region(identity),
            target_region=route.get("target_region") or None,
            host=view.host,
            method=view.method,
            path=view.path,
            model=route.get("model") or self._body_model(view),
            data_class=route.get("data_class") or None,
            headers=view.headers,
            route=route,
        )

    # -- phases --------------------------------------------------------------------------------
    def _identity(self, view: RequestView, keys_refreshed: bool) -> Identity:
        token = bearer_token(view.headers.get("authorization"))
        cached = self._verifier.verify_cached(token)
        if cached is not None:
            return cached
        return self._verifier.verify(token, refreshed=keys_refreshed)

    def _body_model(self, view: RequestView) -> str | None:
        """The model the body names, as the upstream will decode it; None when it names none
        or authz cannot see the whole of it."""
        body = view.body
        headers = view.headers
        if not body or headers.get(PARTIAL_BODY_HEADER) == "true":
            return None
        max_bytes, max_ratio = self._inflate_limits
        return model_to_decide(
            body,
            headers.get("content-type", ""),
            headers.get("content-encoding", ""),
            max_bytes=max_bytes,
            max_ratio=max_ratio,
        )

    def _refused_model(self, model: str | None) -> tuple[str, str] | None:
        """Why a model name is refused, and the name as its refusal records it (masked, then
        bounded); None for a name a decision may carry as it is."""
        if not model:
            return None
        masker = self._model_masker
        masked, kinds = model, set()
        if masker is not None:
            masked = masker.mask_text(model, "request", "model")
            # A dotted quad in a name is a version ("resnet50-1.2.3.4"), not somebody's address.
            kinds = {hit[2] for hit in masker.hits(model)} - _VERSION_LIKE
        if len(model) > MAX_MODEL_CHARS:
            reason = f"the model name is longer than {MAX_MODEL_CHARS} characters"
        elif kinds:
            reason = (
                f"the model name holds a value the gateway masks ({', '.join(sorted(kinds))}): "
                "name a model by its id"
            )
        else:
            return None
        return reason, bounded_model(masked)

    def _declared_region(self, identity: Identity | None) -> str | None:
        claimed = identity.declared_location if identity is not None else None
        if claimed is None:
            return None
        if claimed in self._regions:
            return claimed
        by_country = self._locator.regions_of(claimed.upper())
        return by_country[0] if by_country else UNKNOWN_REGION

    # -- answers -------------------------------------------------------------------------------
    def _allowed(
        self, view: RequestView, decision_id: str, verdict: Verdict, facts: RequestFacts
    ) -> Answer:
        set_headers: list[tuple[str, str]] = [(DECISION_ID_HEADER, decision_id)]
        credential_name = view.route.get("upstream_credential")
        credential_header = None
        if credential_name:
            credential = self._upstreams.credentials.get(credential_name)
            if credential is None:
                log.error(
                    "route names an unknown upstream credential",
                    extra={"credential": credential_name, "request_id": view.request_id},
                )
                reason = "the gateway has no credential for this route"
                return self._failed(
                    view, decision_id, Code.UPSTREAM_CREDENTIAL_UNAVAILABLE, reason, facts
                )
            credential_header = credential.header
            set_headers.append((credential.header, credential.value))
        # A header we overwrite is not also removed: Envoy would drop the injected value.
        remove = tuple(
            header
            for header in self._upstreams.strip_request_headers
            if header != credential_header and header in view.headers
        )
        decision = self._decision(view, decision_id, verdict, facts, None)
        return Answer(decision, tuple(set_headers), remove, facts=facts)

    def _held(
        self, view: RequestView, decision_id: str, verdict: Verdict, facts: RequestFacts
    ) -> Answer:
        """On to the processor, which holds it for an approver, without the upstream
        credential: only the processor's release adds it, so a chain without the processor
        cannot serve it (the model refuses a request without the gateway's key)."""
        credential_name = view.route.get("upstream_credential", "")
        if credential_name and credential_name not in self._upstreams.credentials:
            reason = "the gateway has no credential for this route"
            return self._failed(
                view, decision_id, Code.UPSTREAM_CREDENTIAL_UNAVAILABLE, reason, facts
            )
        remove = tuple(h for h in self._upstreams.strip_request_headers if h in view.headers)
        decision = self._decision(view, decision_id, verdict, facts, None)
        obligations = Obligations(
            masking_profile=decision.obligations.masking_profile,
            upstream_credential=credential_name,
        )
        held = decision._replace(obligations=obligations)
        return Answer(held, ((DECISION_ID_HEADER, decision_id),), remove, facts=facts)

    def _identity_denied(self, view: RequestView, decision_id: str, exc: IdentityError) -> Answer:
        if exc.code == Code.MISSING_TOKEN:
            challenge = 'Bearer realm="extproc"'
        else:
            challenge = (
                f'Bearer realm="extproc", error="invalid_token", '
                f'error_description="{_quote(exc.reason)}"'
            )
        verdict = Verdict("deny", IDENTITY_RULE, exc.reason, exc.status)
        decision = self._decision(view, decision_id, verdict, None, exc.code)
        return Answer(decision, www_authenticate=challenge)

    def _failed(
        self,
        view: RequestView,
        decision_id: str,
        code: Code,
        reason: str,
        facts: RequestFacts | None,
    ) -> Answer:
        verdict = Verdict("deny", str(code), reason, status_of(code))
        return Answer(self._decision(view, decision_id, verdict, facts, code), facts=facts)

    def _decision(
        self,
        view: RequestView,
        decision_id: str,
        verdict: Verdict,
        facts: RequestFacts | None,
        error: Code | None,
    ) -> Decision:
        identity = facts.identity if facts is not None else None
        return Decision(
            decision_id=decision_id,
            request_id=view.request_id,
            effect=verdict.effect,
            rule=verdict.rule,
            reason=verdict.reason,
            status=verdict.status if error is not None else 200,
            error=error,
            enforced=verdict.enforced,
            dry_run=verdict.dry_run,
            subject=identity.subject if identity else "",
            issuer=identity.issuer if identity else "",
            groups=tuple(sorted(identity.groups)) if identity else (),
            source_address=view.source_address,
            source_country=(facts.source.country or UNKNOWN_REGION) if facts else "",
            source_region=facts.source.region if facts else "",
            declared_region=(facts.declared_region or "") if facts else "",
            target_region=(facts.target_region or "") if facts else "",
            model=(facts.model or "") if facts else "",
            data_class=(facts.data_class or "") if facts else "",
            policy_revision=self._revision,
            obligations=_obligations(view.route),
        )


def _obligations(route: Mapping[str, str]) -> Obligations:
    profile = route.get("masking_profile")
    return Obligations(masking_profile=profile) if profile else NO_OBLIGATIONS


def bearer_token(header: str | None) -> str:
    if not header:
        raise IdentityError("no bearer token was presented", code=Code.MISSING_TOKEN)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise IdentityError(
            "the authorization header is not a Bearer token", code=Code.MALFORMED_TOKEN
        )
    return token.strip()


def internal_error(request_id: str, decision_id: str) -> Answer:
    """The answer when deciding itself failed: a deny, never an allow."""
    decision = Decision(
        decision_id=decision_id,
        request_id=request_id,
        effect="deny",
        rule=str(Code.INTERNAL_ERROR),
        reason="the gateway could not decide this request",
        status=500,
        error=Code.INTERNAL_ERROR,
    )
    return Answer(decision)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
