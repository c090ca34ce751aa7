"""One HTTP exchange as the processor sees it: the state machine, without gRPC.

Envoy sends, in order: request headers, request body (BUFFERED: once, whole), response headers,
response body (BUFFERED for JSON and text; STREAMED, chunk by chunk, for ``text/event-stream``).
Each step returns what Envoy must do. The rules:

- The authz decision arrives as dynamic metadata (never headers a client could send). Without
  one the exchange is refused (``no_authorization_decision``): a route without authz is a
  misconfiguration, not an open door.
- Any body that will be masked loses its ``content-length`` at header time (the masked body may
  differ in length; Envoy answers 500 to a mutation that disagrees with it).
- Masking fails closed: a body that cannot be masked (bad UTF-8 when configured to deny, an
  unknown content encoding, a decode error) is not passed on; the exchange ends with an error.
- gzip bodies are decoded, masked and re-encoded (``compressed: decode``), or refused
  (``compressed: deny``). Other encodings are refused.
- The audit event is produced once, when the exchange ends, with counts and ids only.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from extproc.masking.engine import BlockHit, Finding, Masker, MaskingError, findings_by_type
from extproc.masking.profile import MaskingConfig, Profile
from extproc.masking.stream import SseMasker

_JSON_TYPES = ("application/json", "+json")
_MAX_CAPTURE = 4096


@dataclass(frozen=True, slots=True)
class Refusal:
    """End the exchange now with this HTTP status and JSON error."""

    status: int
    error: str
    reason: str
    rule: str


@dataclass(frozen=True, slots=True)
class HeaderStep:
    remove: tuple[str, ...] = ()
    stream_body: bool = False  # switch the response body to STREAMED (SSE)
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class BodyStep:
    body: bytes | None = None  # None: unchanged
    refusal: Refusal | None = None


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
        require_decision: bool = True,
        capture_bytes: int = 0,
        audit_available: bool = True,
    ) -> None:
        self._audit_available = audit_available
        self._masking = masking
        self._maskers = maskers
        self._require_decision = require_decision
        self._capture_bytes = min(capture_bytes, _MAX_CAPTURE)
        self.decision: dict[str, Any] = {}
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.method = ""
        self.path = ""
        self.status = 0
        self.blocked: BlockHit | None = None
        self.refusal: Refusal | None = None
        self.request = _Direction()
        self.response = _Direction()
        self._stream: SseMasker | None = None
        self._response_chunks: list[bytes] = []
        self.captured: dict[str, str] = {}

    # -- metadata -------------------------------------------------------------------------------
    def add_decision(self, metadata: Mapping[str, Any]) -> None:
        self.decision.update(metadata)

    @property
    def masker(self) -> Masker:
        """The route's ``masking_profile``, else the profile of the caller's first group listed
        in ``group_profiles``, else a profile named like the route's ``data_class``, else the
        default."""
        name = str(self.decision.get("masking_profile") or "")
        if name in self._maskers:
            return self._maskers[name]
        groups = self.decision.get("groups") or ()
        for group, profile in self._masking.group_profiles:
            if group in groups:
                return self._maskers[profile]
        data_class = str(self.decision.get("data_class") or "")
        if data_class in self._maskers:
            return self._maskers[data_class]
        return self._maskers[self._masking.default_profile]

    @property
    def profile(self) -> Profile:
        return self.masker.profile

    # -- request --------------------------------------------------------------------------------
    def request_headers(self, headers: Mapping[str, str]) -> HeaderStep:
        self.method = headers.get(":method", "")
        self.path = headers.get(":path", "").split("?", 1)[0]
        if not self._audit_available:
            return self._refuse(
                503, "audit_unavailable", "the audit trail cannot accept events", "audit"
            )
        if self._require_decision and not self.decision.get("decision_id"):
            return self._refuse(
                403,
                "no_authorization_decision",
                "no authorization decision reached the processor",
                "processor",
            )
        self.request.content_type = headers.get("content-type", "").lower()
        self.request.encoding = headers.get("content-encoding", "").lower().strip()
        if self.request.encoding not in ("", "identity", "gzip"):
            return self._refuse(
                415, "unsupported_encoding", "the request body's encoding cannot be inspected"
            )
        if self.request.encoding == "gzip" and self._masking.compressed == "deny":
            return self._refuse(
                415, "compressed_body_refused", "compressed request bodies are refused"
            )
        return HeaderStep(remove=("content-length",))

    def request_body(self, body: bytes) -> BodyStep:
        self.request.bytes_in = len(body)
        if "request" not in self.profile.directions or not body:
            self.request.bytes_out = len(body)
            return BodyStep()
        try:
            plain = _decode(body, self.request.encoding)
            hit = self.masker.blocked(plain, "request")
            if hit is not None:
                self.blocked = hit
                refusal = Refusal(403, "prompt_blocked", hit.reason, hit.rule)
                self.refusal = refusal
                return BodyStep(refusal=refusal)
            masked = self._mask(plain, self.request, "request")
        except MaskingError as exc:
            return BodyStep(refusal=self._refusal(502, exc.code, exc.reason))
        self._capture("request", masked if masked is not None else plain)
        if masked is None:
            self.request.bytes_out = len(body)
            return BodyStep()
        out = _encode(masked, self.request.encoding)
        self.request.bytes_out = len(out)
        return BodyStep(body=out)

    # -- response -------------------------------------------------------------------------------
    def response_headers(self, headers: Mapping[str, str]) -> HeaderStep:
        status = headers.get(":status", "0")
        self.status = int(status) if status.isdigit() else 0
        self.response.content_type = headers.get("content-type", "").lower()
        self.response.encoding = headers.get("content-encoding", "").lower().strip()
        if "response" not in self.profile.directions:
            return HeaderStep()
        if self.response.encoding not in ("", "identity", "gzip") or (
            self.response.encoding == "gzip" and self._masking.compressed == "deny"
        ):
            return self._refuse(
                502, "unsupported_encoding", "the model's response encoding cannot be inspected"
            )
        if self.response.content_type.startswith("text/event-stream"):
            if self.response.encoding == "gzip":
                return self._refuse(
                    502, "unsupported_encoding", "compressed event streams are refused"
                )
            self._stream = SseMasker(self.masker, "response")
            return HeaderStep(remove=("content-length",), stream_body=True)
        return HeaderStep(remove=("content-length",))

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> BodyStep:
        """A streamed (SSE) response chunk: mask what is final, hold back the rest."""
        assert self._stream is not None
        self.response.bytes_in += len(chunk)
        out = self._stream.feed(chunk)
        if end_of_stream:
            out += self._stream.finish()
            self.response.findings.extend(self._stream.all_findings())
        self.response.bytes_out += len(out)
        return BodyStep(body=out)

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    def response_body(self, body: bytes) -> BodyStep:
        self.response.bytes_in = len(body)
        if "response" not in self.profile.directions or not body:
            self.response.bytes_out = len(body)
            return BodyStep()
        try:
            plain = _decode(body, self.response.encoding)
            masked = self._mask(plain, self.response, "response")
        except MaskingError as exc:
            return BodyStep(refusal=self._refusal(502, exc.code, exc.reason))
        self._capture("response", masked if masked is not None else plain)
        if masked is None:
            self.response.bytes_out = len(body)
            return BodyStep()
        out = _encode(masked, self.response.encoding)
        self.response.bytes_out = len(out)
        return BodyStep(body=out)

    # -- masking --------------------------------------------------------------------------------
    def _mask(self, body: bytes, side: _Direction, direction: str) -> bytes | None:
        content_type = side.content_type
        if any(marker in content_type for marker in _JSON_TYPES):
            result = self.masker.mask_json(body, direction)
        elif content_type.startswith("text/") or not content_type:
            result = self.masker.mask_bytes_as_text(body, direction)
        else:
            # Binary bodies (images, audio) are scanned as text only if they decode; anything
            # that cannot be read cannot be proven clean, so it does not pass.
            result = self.masker.mask_bytes_as_text(body, direction)
        side.findings.extend(result.findings)
        return result.body if result.changed else None

    def _capture(self, direction: str, body: bytes) -> None:
        if self._capture_bytes:
            self.captured[direction] = body[: self._capture_bytes].decode("utf-8", "replace")

    def _refusal(self, status: int, error: str, reason: str, rule: str = "masking") -> Refusal:
        self.refusal = Refusal(status, error, reason, rule)
        return self.refusal

    def _refuse(self, status: int, error: str, reason: str, rule: str = "masking") -> HeaderStep:
        return HeaderStep(refusal=self._refusal(status, error, reason, rule))

    # -- the audit event --------------------------------------------------------------------------
    def audit_event(self) -> dict[str, Any]:
        d = self.decision
        findings = findings_by_type([*self.request.findings, *self.response.findings])
        event: dict[str, Any] = {
            "time": self.started_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "service": "processor",
            "request_id": d.get("request_id", ""),
            "decision_id": d.get("decision_id", ""),
            "decision": "deny" if self.refusal else d.get("decision", ""),
            "rule": self.refusal.rule if self.refusal else d.get("rule", ""),
            "reason": self.refusal.error if self.refusal else d.get("reason", ""),
            "subject": d.get("subject", ""),
            "issuer": d.get("issuer", ""),
            "groups": list(d.get("groups", [])),
            "source_address": d.get("source_address", ""),
            "source_country": d.get("source_country", ""),
            "source_region": d.get("source_region", ""),
            "declared_region": d.get("declared_region", ""),
            "target_region": d.get("target_region", ""),
            "model": d.get("model", ""),
            "method": self.method,
            "path": self.path,
            "upstream_status": self.status,
            "request_bytes": self.request.bytes_in,
            "response_bytes": self.response.bytes_out,
            "findings": findings,
            "masking_profile": self.profile.name,
            "masking_mode": self.profile.mode,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 3),
            "policy_revision": d.get("policy_revision", ""),
        }
        if d.get("approval_id"):
            event["approval_id"] = d["approval_id"]
        if d.get("dry_run"):
            event["dry_run"] = d["dry_run"]
        if self.captured:
            event["capture"] = dict(self.captured)
        return event


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding != "gzip":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error):
        raise MaskingError("the gzip body cannot be decoded", code="invalid_encoding") from None


def _encode(body: bytes, encoding: str) -> bytes:
    return gzip.compress(body, compresslevel=5) if encoding == "gzip" else body
