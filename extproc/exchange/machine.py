"""One HTTP exchange as the processor sees it: the state machine, without gRPC or I/O.

Envoy sends, in order: request headers, request body (BUFFERED: once, whole), response headers,
response body (BUFFERED; STREAMED, chunk by chunk, for event streams and NDJSON). Each step
returns what Envoy must do. The rules:

- The authz decision arrives as dynamic metadata (never headers a client could send), read
  back through ``extproc.decision.from_metadata``. Without one the exchange is refused
  (``no_authorization_decision``): a route without authz is a misconfiguration, not an open
  door; a malformed one is refused too (``invalid_authorization_decision``).
- Any body that will be masked loses its ``content-length`` at header time (the masked body may
  differ in length; Envoy answers 500 to a mutation that disagrees with it).
- Bodies are masked by what the receiver will decode, not by their label
  (``Masker.mask_body``: JSON sniffed, forms and multipart part by part, escapes and Unicode
  compatibility forms folded), and the request target too: each path segment and query value
  is masked before the router sends it on, and the audit records the masked path.
- Masking fails closed: a body that cannot be masked (bad UTF-8, JSON refused by the profile,
  an unknown content encoding, a decode error) is not passed on; the exchange ends with an error.
- A request body naming a model other than the decision's (``extproc.requested_model``: any
  top-level ``model``, every occurrence, as lenient parsers read it) is refused
  (``model_not_authorized``) before anything reaches the upstream, held or not, masked or not.
- gzip and deflate bodies are inflated within bounds (``max_inflated_bytes``,
  ``max_inflate_ratio``: a bomb is refused with 413 before memory grows), masked and re-encoded
  (``compressed: decode``), or refused (``compressed: deny``). Other encodings are refused.
- The audit event is produced once, when the exchange ends, with counts and ids only, by the
  one builder both services share (``extproc.audit.event.build_event``). Envoy also runs the
  response path of authz's own denial through the processor; authz has recorded that request
  already, so such an exchange passes untouched and leaves no second event.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.approval.policy import ApprovalPolicy
from extproc.audit.event import Refusal, Traffic, build_event
from extproc.audit.recording import RecordingConfig
from extproc.clock import SYSTEM_CLOCK, Clock
from extproc.decision import Decision
from extproc.errors import CODES, Code, status_of
from extproc.exchange.coding import READABLE_ENCODINGS, declared_length, encode, is_compressed
from extproc.exchange.gateway import gateway_answer
from extproc.exchange.recording import Recorder
from extproc.exchange.steps import BodyStep, HeaderStep, Hold
from extproc.masking.engine import BlockHit, Finding, Masker, MaskingError, findings_by_type
from extproc.masking.inflate import inflate
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.restore import ExchangeTokens
from extproc.masking.stream import (
    StreamMasker,
    mask_buffered_stream,
    sniff_stream,
    stream_masker,
    streamed_kind,
)
from extproc.masking.url import mask_header_value, mask_target
from extproc.masking.walk import MIN_VALUE_CHARS
from extproc.requested_model import body_models, mismatch_reason

JUSTIFICATION_HEADER = "x-approval-justification"
# Headers whose values masking leaves alone, either way: HTTP's framing and coding (a multipart
# boundary must stay the body's), the credentials (authz strips the caller's and writes the
# gateway's), the request id Envoy writes and the decision id authz writes. Every other value,
# whoever wrote it, is read.
KEPT_HEADERS = frozenset(
    {
        "content-type", "content-length", "content-encoding", "transfer-encoding", "te",
        "connection", "upgrade", "keep-alive", "authorization", "proxy-authorization",
        "x-api-key", "x-request-id", "x-extproc-decision-id",
    }
)  # fmt: skip
# Hop-by-hop client addresses: left alone while they hold addresses only (a value a client
# put there that is anything else is read like any header).
ADDRESS_HEADERS = frozenset(
    {"x-forwarded-for", "x-envoy-external-address", "x-real-ip", "x-extproc-client-address"}
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no header value may carry these
_NOT_MASKED = "not masked by the profile (report mode or direction not masked)"
_RESTORED = "carries values restored for the caller"


@dataclass(slots=True)
class _Direction:
    content_type: str = ""
    encoding: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    findings: list[Finding] = field(default_factory=list)


class Exchange:
    def __init__(
        self,
        masking: MaskingConfig,
        maskers: Mapping[str, Masker],
        *,
        clock: Clock = SYSTEM_CLOCK,
        capture_bytes: int = 0,
        recording: RecordingConfig | None = None,
        audit_available: bool = True,
        approval_for: Callable[[str], ApprovalPolicy | None] = lambda _rule: None,
        credential_for: Callable[[str], tuple[str, str] | None] = lambda _name: None,
        credential_headers: frozenset[str] = frozenset(),
    ) -> None:
        self._approval_for = approval_for
        self._credential_for = credential_for
        self._credential_headers = credential_headers  # the gateway's own: never masked
        self._hold_policy: ApprovalPolicy | None = None
        self.pending_hold: Hold | None = None  # set by a step; the adapter resolves it
        self.justification: str | None = None
        self.approval_id = ""
        self.approval_status = ""
        self.released_headers: tuple[tuple[str, str], ...] = ()
        self._audit_available = audit_available
        self._masking = masking
        self._maskers = maskers
        self._clock = clock
        self._capture_bytes = capture_bytes  # the configured size; the writer cuts to it
        self._recording = recording  # None when recording is off: one check per step
        self.recorder: Recorder | None = None  # this exchange is being recorded
        self._response_seen = False
        self.decision: Decision | None = None
        self._decision_problem: str | None = None
        self.started = clock.monotonic()
        self.started_at = clock.timestamp()
        self.method = ""
        self.path = ""
        self._request_id_header = ""
        self._request_seen = False
        self.answered_by_authz = False
        self.answered_by_gateway = False  # Envoy's own answer (a limit, a timeout, authz down)
        self._response_pending = False  # response headers said a body follows; it has not ended
        self.status = 0
        self.blocked: BlockHit | None = None
        self.refusal: Refusal | None = None
        self.request = _Direction()
        self.response = _Direction()
        self._stream: StreamMasker | None = None
        self._response_skipped = False  # Envoy was told not to send the response body
        self.captured: dict[str, str] = {}
        self.tokens = ExchangeTokens()  # restore: true; the values die with the exchange

    # -- the decision -----------------------------------------------------------------------------
    def add_decision(self, decision: Decision) -> None:
        self.decision = decision

    def reject_decision(self, problem: str) -> None:
        """The metadata authz should have written is malformed: the exchange will be refused."""
        self._decision_problem = problem

    @property
    def request_id(self) -> str:
        """The decision's request id; Envoy's ``x-request-id`` when no decision arrived."""
        return self.decision.request_id if self.decision else self._request_id_header

    @property
    def masker(self) -> Masker:
        """The chosen profile's masker, bound to this exchange's tokens if it restores them."""
        return self.tokens.bind(self._chosen_masker)

    @property
    def _chosen_masker(self) -> Masker:
        """The route's ``masking_profile``, else the profile of the caller's first group listed
        in ``group_profiles``, else a profile named like the route's ``data_class``, else the
        default."""
        decision = self.decision
        if decision is not None:
            name = decision.obligations.masking_profile
            if name in self._maskers:
                return self._maskers[name]
            for group, profile in self._masking.group_profiles:
                if group in decision.groups:
                    return self._maskers[profile]
            if decision.data_class in self._maskers:
                return self._maskers[decision.data_class]
        return self._maskers[self._masking.default_profile]

    @property
    def profile(self) -> Profile:
        return self.masker.profile

    # -- request --------------------------------------------------------------------------------
    def request_headers(
        self, headers: Mapping[str, str], end_of_stream: bool = False
    ) -> HeaderStep:
        self._request_seen = True
        self.method = headers.get(":method", "")
        target = headers.get(":path", "")
        self.path = target.split("?", 1)[0]
        self._request_id_header = headers.get("x-request-id", "")
        if not self._audit_available:
            return self._refuse(
                Code.AUDIT_UNAVAILABLE, "the audit trail cannot accept events", "audit"
            )
        if self._decision_problem is not None:
            return self._refuse(
                Code.INVALID_AUTHORIZATION_DECISION, self._decision_problem, "processor"
            )
        if self.decision is None:
            return self._refuse(
                Code.NO_AUTHORIZATION_DECISION,
                "no authorization decision reached the processor",
                "processor",
            )
        if not self.decision.lets_request_through:
            # authz answers denials itself; one that reaches us means a misconfigured chain.
            return self._refuse(
                self.decision.error or Code.FORBIDDEN, self.decision.reason, self.decision.rule
            )
        self.request.content_type = headers.get("content-type", "")
        self.request.encoding = headers.get("content-encoding", "").lower().strip()
        if self.request.encoding not in READABLE_ENCODINGS:
            return self._refuse(
                Code.UNSUPPORTED_ENCODING, "the request body's encoding cannot be inspected"
            )
        if is_compressed(self.request.encoding) and self._masking.compressed == "deny":
            return self._refuse(
                Code.COMPRESSED_BODY_REFUSED, "compressed request bodies are refused"
            )
        remove: tuple[str, ...] = ()
        if JUSTIFICATION_HEADER in headers:  # for the approver, not for the model
            self.justification = headers[JUSTIFICATION_HEADER]
            remove += (JUSTIFICATION_HEADER,)
        if self.decision.awaits_approval:
            self._hold_policy = self._approval_for(self.decision.rule)
            if self._hold_policy is None:
                return self._refuse(
                    Code.APPROVALS_UNAVAILABLE,
                    "the rule that asks for an approval is not in this config",
                    rule="approvals",
                )
            if end_of_stream:
                self.pending_hold = Hold(self._hold_policy, self.decision, None)
        # The response body of a profile that does not inspect it is left out: a message and
        # a copy fewer. A request body is always needed: the model it names is checked against
        # the decision whatever the profile masks (and a held request's grant may bind to it).
        self._response_skipped = "response" not in self.profile.directions
        if "request" in self.profile.directions:
            remove += ("content-length",)  # the masked body may differ in length
        masked_target = self._mask_target(target)
        if masked_target is not None:
            self.path = masked_target.split("?", 1)[0]
        if self._recording is not None and self._recording.selects(self.profile.name, self.path):
            self.recorder = Recorder(self._recording.max_bytes, self.started)
            self._record_headers("request", headers)
        skip = self._response_skipped
        masked_headers = self._masked_headers(
            headers, "request", self.request.findings, removed=remove
        )
        if masked_target is not None:
            masked_headers += ((":path", masked_target),)
        return HeaderStep(remove=remove, set=masked_headers, skip_response_body=skip)

    def request_body(self, body: bytes) -> BodyStep:
        step = self._request_body(body)
        if step.refusal is None and self._hold_policy is not None and self.decision is not None:
            self.pending_hold = Hold(self._hold_policy, self.decision, body)
        return step

    def _request_body(self, body: bytes) -> BodyStep:
        self.request.bytes_in = len(body)
        if not body:
            return BodyStep()
        try:
            plain = self._inflate(body, self.request.encoding)
            unauthorized = self._unauthorized_model(plain)
            if unauthorized is not None:
                return BodyStep(refusal=unauthorized)
            if "request" not in self.profile.directions:
                self.request.bytes_out = len(body)
                return BodyStep()
            hit = self.masker.blocked(plain, "request", self.request.content_type)
            if hit is not None and hit.approval is not None and self.decision is not None:
                # Content that needs a human's approval: held (after masking), not refused.
                self.blocked = hit
                if self._hold_policy is None:
                    self._hold_policy = hit.approval
                    self.decision = self.decision._replace(
                        effect="require_approval", rule=hit.rule, reason=hit.reason
                    )
            elif hit is not None:
                self.blocked = hit
                self.refusal = Refusal(Code.PROMPT_BLOCKED, hit.reason, hit.rule, 403)
                return BodyStep(refusal=self.refusal)
            masked = self._mask(plain, self.request, "request")
        except MaskingError as exc:
            return BodyStep(refusal=self._refusal(exc.code, exc.reason))
        self._capture("request", masked if masked is not None else plain)
        if self.recorder is not None:
            self._record_body("request", masked if masked is not None else plain)
        if masked is None:
            self.request.bytes_out = len(body)
            return BodyStep()
        out = encode(masked, self.request.encoding)
        self.request.bytes_out = len(out)
        return BodyStep(body=out)

    # -- response -------------------------------------------------------------------------------
    def response_headers(
        self, headers: Mapping[str, str], end_of_stream: bool = False
    ) -> HeaderStep:
        status = headers.get(":status", "0")
        self.status = int(status) if status.isdigit() else 0
        self.response.content_type = headers.get("content-type", "")
        self.response.encoding = headers.get("content-encoding", "").lower().strip()
        self._response_seen = True
        if self.recorder is not None:
            self.recorder.response["status"] = self.status
            self._record_headers("response", headers)
        decision = self.decision
        if not self._request_seen and decision is not None and not decision.lets_request_through:
            self.answered_by_authz = True  # authz's JSON denial: nothing of the model's in it
            return HeaderStep()
        if not self._request_seen and decision is None:
            # Envoy answered before the request reached authz or us (a body over the limit, a
            # request timeout, authz unreachable): its body names the code and the request,
            # which the event records. It is masked all the same: a route misconfigured to
            # skip both authz and our request path must not pass a model's answer raw.
            self.answered_by_gateway = True
        self._response_pending = not end_of_stream
        if "response" not in self.profile.directions:
            if self._response_skipped:
                self.response.bytes_in = self.response.bytes_out = declared_length(headers)
            return HeaderStep()
        if self.response.encoding not in READABLE_ENCODINGS or (
            is_compressed(self.response.encoding) and self._masking.compressed == "deny"
        ):
            return self._refuse(
                Code.UNSUPPORTED_ENCODING,
                "the model's response encoding cannot be inspected",
                status=502,
            )
        # Streamed if any media type listed is a stream's (two content-type headers merge
        # into one list; SDKs read the body as SSE whatever else it names).
        streamed = streamed_kind(self.response.content_type)
        if streamed and is_compressed(self.response.encoding):
            return self._refuse(
                Code.UNSUPPORTED_ENCODING, "compressed streams are refused", status=502
            )
        masked = self._masked_headers(headers, "response", self.response.findings)
        if streamed:
            self._stream = stream_masker(self.response.content_type, self.masker, "response")
        return HeaderStep(remove=("content-length",), set=masked, stream_body=bool(streamed))

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> BodyStep:
        """A streamed response chunk: mask what is final, hold back only what could still
        become a match. Findings count as they are made, so a cut stream is audited too."""
        assert self._stream is not None
        self.response.bytes_in += len(chunk)
        out = self._stream.feed(chunk)
        if end_of_stream:
            out += self._stream.finish()
            self._response_pending = False
        self.response.bytes_out += len(out)
        if self.recorder is not None and (out or end_of_stream):
            if len(self.tokens):
                self.recorder.omit("response", _RESTORED)
            elif self._masks("response"):
                self.recorder.chunk(out, self._clock.monotonic())
        return BodyStep(body=out)

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    def response_body(self, body: bytes) -> BodyStep:
        """The whole answer (BUFFERED: Envoy sends it once, complete)."""
        self.response.bytes_in = len(body)
        self._response_pending = False
        if self.answered_by_gateway:
            self._read_gateway_answer(body)
        if self.answered_by_authz or "response" not in self.profile.directions or not body:
            self.response.bytes_out = len(body)
            return BodyStep()
        try:
            plain = self._inflate(body, self.response.encoding)
            masked = self._mask_response(plain)
        except MaskingError as exc:
            # The model's answer could not be made safe: the caller gets a gateway error.
            return BodyStep(refusal=self._refusal(exc.code, exc.reason, status=502))
        self._capture("response", masked if masked is not None else plain)
        if self.recorder is not None:
            self._record_body("response", masked if masked is not None else plain)
        if masked is None:
            self.response.bytes_out = len(body)
            return BodyStep()
        out = encode(masked, self.response.encoding)
        self.response.bytes_out = len(out)
        return BodyStep(body=out)

    def _read_gateway_answer(self, body: bytes) -> None:
        answer = gateway_answer(body, self.status)
        if answer is not None:
            self.refusal, request_id = answer
            self._request_id_header = request_id or self._request_id_header

    @property
    def forwarding(self) -> bool:
        """The request is on its way to the model (a decision let it through, nothing refused
        it): with write-ahead audit its opening record must be durable first."""
        return self.decision is not None and self.refusal is None and self._request_seen

    def open_event(self) -> dict[str, Any]:
        """The opening record of an exchange about to reach the model: who, what, the decision."""
        return build_event(
            service="processor",
            time=self.started_at,
            decision=self.decision,
            method=self.method,
            path=self.path,
        )

    def unrecorded(self) -> Refusal:
        """The opening record could not be made durable: the request must not go on."""
        return self._refusal(
            Code.AUDIT_UNAVAILABLE, "the audit trail cannot record this exchange", rule="audit"
        )

    # -- approvals ------------------------------------------------------------------------------
    def release(self, approval_id: str) -> tuple[tuple[str, str], ...] | Refusal:
        """An approver (or a grant) released the request: the headers to add (the upstream
        credential authz withheld), or a refusal when the gateway lacks that credential."""
        self.pending_hold = None
        self.approval_id, self.approval_status = approval_id, "granted"
        decision = self.decision
        name = decision.obligations.upstream_credential if decision else ""
        if not name:
            return ()
        credential = self._credential_for(name)
        if credential is None:
            return self._refusal(
                Code.UPSTREAM_CREDENTIAL_UNAVAILABLE,
                "the gateway has no credential for this route",
                rule="approvals",
            )
        return (credential,)

    def not_released(self, code: Code, reason: str, approval_id: str = "") -> Refusal:
        """No approval (yet, or an approver said no), or the request cannot wait for one."""
        self.pending_hold = None
        self.approval_id = approval_id
        rule = self.decision.rule if self.decision else "approvals"
        self.refusal = Refusal(code, reason, rule, status_of(code), approval_id)
        return self.refusal

    def fail(self, reason: str) -> Refusal:
        """Processing itself failed: refuse (fail closed)."""
        return self._refusal(Code.PROCESSING_FAILED, reason, rule="processor")

    # -- masking --------------------------------------------------------------------------------
    def _mask(self, body: bytes, side: _Direction, direction: str) -> bytes | None:
        # Read by what it is, whatever its label; what cannot be read cannot be proven clean,
        # so it does not pass (MaskingError).
        profile = self.profile
        result = self.masker.mask_body(
            body, side.content_type, direction, binary_parts=profile.binary_parts
        )
        side.findings.extend(result.findings)
        return result.body if result.changed else None

    def _mask_response(self, body: bytes) -> bytes | None:
        """A whole answer; one that reads as an event stream (SSE or NDJSON chunks), whatever
        its label, is masked as the stream a client's SDK will parse and join."""
        kind = sniff_stream(body)
        if not kind:
            return self._mask(body, self.response, "response")
        masked, findings = mask_buffered_stream(self.masker, body, kind, "response")
        self.response.findings.extend(findings)
        return masked if masked is not body else None

    def _unauthorized_model(self, plain: bytes) -> Refusal | None:
        """A body naming a model other than the one authz decided on never reaches the
        upstream, whatever authz could see of it (a part, a coding, a parser's reading)."""
        decided = self.decision.model if self.decision is not None else ""
        models = body_models(plain, self.request.content_type)
        if not models.differs_from(decided):
            return None
        # The reason quotes the body's model, which lands in the audit record: masked.
        reason = self._chosen_masker.mask_text(mismatch_reason(models, decided), "request")
        return self._refusal(Code.MODEL_NOT_AUTHORIZED, reason, "model")

    def _mask_target(self, target: str) -> str | None:
        """The masked ``:path``, or None when it needs no change."""
        if "request" not in self.profile.directions or len(target) < 4:
            return None
        masked, findings = mask_target(self.masker, target)
        self.request.findings.extend(findings)
        return masked if masked != target else None

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        if not is_compressed(encoding):
            return body
        masking = self._masking
        return inflate(
            body,
            encoding,
            max_bytes=masking.max_inflated_bytes,
            max_ratio=masking.max_inflate_ratio,
        )

    def _capture(self, direction: str, body: bytes) -> None:
        if direction == "response" and len(self.tokens):
            return  # the reply holds the caller's own values put back: never in the trail
        if self._capture_bytes:
            self.captured[direction] = body[: self._capture_bytes].decode("utf-8", "replace")

    # -- the recording --------------------------------------------------------------------------
    def _masks(self, direction: str) -> bool:
        """Whether what passes in ``direction`` was masked (a report-mode profile, or one that
        leaves a direction alone, lets raw values through: those are never recorded)."""
        profile = self.profile
        return profile.mode == "enforce" and direction in profile.directions

    def _masked_headers(
        self,
        headers: Mapping[str, str],
        direction: str,
        findings: list[Finding],
        removed: tuple[str, ...] = (),
    ) -> tuple[tuple[str, str], ...]:
        """The headers whose values hold a finding, masked: a header reaches the model or the
        caller like the body does, percent-escapes read as a URL reader reads them, each value
        of a repeated header on its own. Left as they are: ``KEPT_HEADERS``, the gateway's
        credential headers, what the exchange removes, and address headers holding addresses."""
        if direction not in self.profile.directions:
            return ()
        masker = self._chosen_masker  # unbound: a header value must not issue restore tokens
        repeated: Mapping[str, list[str]] = getattr(headers, "repeated", {})
        masked: list[tuple[str, str]] = []
        for name, joined in headers.items():
            if name[:1] == ":" or name in KEPT_HEADERS or name in self._credential_headers:
                continue
            if name in removed or (len(joined) < MIN_VALUE_CHARS and joined.isascii()):
                continue
            if name in ADDRESS_HEADERS and _only_addresses(joined):
                continue  # the hops Envoy and the proxies wrote: addresses, not content
            values = repeated.get(name) or [joined]
            location = f"headers.{name}"
            news = [
                _header_safe(mask_header_value(masker, value, direction, location, findings))
                for value in values
            ]
            if news != values:
                masked.extend((name, new) for new in news)
        return tuple(masked)

    def _record_headers(self, direction: str, headers: Mapping[str, str]) -> None:
        assert self.recorder is not None
        if not self._masks(direction):
            self.recorder.headers(direction, {}, str)
            self.recorder.omit(direction, _NOT_MASKED)
            return
        masker = self._chosen_masker  # unbound: a header value must not issue restore tokens
        self.recorder.headers(
            direction,
            headers,
            lambda value: masker.mask_text(value, direction, findings=[]),
            self._clock.monotonic(),
        )

    def _record_body(self, direction: str, body: bytes) -> None:
        assert self.recorder is not None
        if not self._masks(direction):
            self.recorder.omit(direction, _NOT_MASKED, len(body))
        elif direction == "response" and len(self.tokens):
            self.recorder.omit(direction, _RESTORED, len(body))
        else:
            self.recorder.body(direction, body)

    def recording(self) -> dict[str, Any] | None:
        """The exchange's recording document, when it is recorded (call once it has ended)."""
        recorder = self.recorder
        if recorder is None or self.answered_by_authz:
            return None
        refusal = self.refusal
        unsent = self.request.bytes_in and "omitted" not in recorder.request
        if refusal is not None and not self._response_seen and unsent:
            # Refused before the model saw it (blocked, not released, not recorded durably).
            recorder.omit("request", f"not forwarded: {refusal.error}")
        summary = {
            "request_id": self.request_id,
            "decision_id": self.decision.decision_id if self.decision else "",
            "time": self.started_at,
            "method": self.method,
            # The path was masked only if the request was: otherwise it is not recorded either.
            "path": self.path if self._masks("request") else "",
            "masking_profile": self.profile.name,
        }
        return recorder.document(summary)

    def _refusal(
        self, error: Code, reason: str, rule: str = "masking", status: int | None = None
    ) -> Refusal:
        self.refusal = Refusal(error, reason, rule, status or status_of(error))
        return self.refusal

    def _refuse(
        self, error: Code, reason: str, rule: str = "masking", status: int | None = None
    ) -> HeaderStep:
        return HeaderStep(refusal=self._refusal(error, reason, rule, status))

    # -- the audit event --------------------------------------------------------------------------
    def audit_event(self) -> dict[str, Any] | None:
        """The exchange's one event; None when authz answered and recorded it itself."""
        if self.answered_by_authz:
            return None
        streamed = self._stream.findings if self._stream is not None else []
        findings = findings_by_type([*self.request.findings, *self.response.findings, *streamed])
        traffic = Traffic(
            upstream_status=self.status,
            request_bytes=self.request.bytes_in,
            response_bytes=self.response.bytes_out,
            findings=findings,
            masking_profile=self.profile.name,
            masking_mode=self.profile.mode,
            duration_ms=round((self._clock.monotonic() - self.started) * 1000, 3),
            capture=self.captured or None,
        )
        event = build_event(
            service="processor",
            time=self.started_at,
            decision=self.decision,
            method=self.method,
            path=self.path,
            refusal=self.refusal,
            traffic=traffic,
        )
        # Every record names its request (Envoy's x-request-id when no decision came with one).
        event.setdefault("request_id", self.request_id or f"unidentified-{self.started_at}")
        if self._response_pending and self.refusal is None and not self._response_skipped:
            # The stream ended before the model's answer did: Envoy refused the rest (over its
            # limit), the client left, or the model failed. The policy's outcome stands; the
            # event says the exchange did not complete as recorded.
            incomplete = Code.EXCHANGE_INCOMPLETE
            event.update(error=str(incomplete), reason=CODES[incomplete].meaning)
        if self.approval_status == "granted":
            event.update(outcome="allowed", approval_id=self.approval_id, approval_status="used")
        return event


def _only_addresses(value: str) -> bool:
    try:
        for hop in value.split(","):
            ipaddress.ip_address(hop.strip())
    except ValueError:
        return False
    return True


def _header_safe(value: str) -> str:
    """Control characters a decoded value may hold (``%0d%0a``), escaped again: no header may
    carry them, and Envoy refuses a mutation that does."""
    return _CONTROL.sub(lambda match: f"%{ord(match.group()):02X}", value)
