"""What each step of an exchange tells the adapter to do: plain values, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.approval.policy import ApprovalPolicy
from extproc.audit.event import Refusal
from extproc.decision import Decision


@dataclass(frozen=True, slots=True)
class Hold:
    """The request waits for a human approval: ``decision`` names the rule that asks for it
    (authz's, or a content rule's), ``body`` is what a request-scoped grant binds to."""

    policy: ApprovalPolicy
    decision: Decision
    body: bytes | None


@dataclass(frozen=True, slots=True)
class HeaderStep:
    remove: tuple[str, ...] = ()
    set: tuple[tuple[str, str], ...] = ()  # e.g. the masked :path
    stream_body: bool = False  # switch the response body to STREAMED (SSE)
    skip_response_body: bool = False  # Envoy need not send the response body at all
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class BodyStep:
    body: bytes | None = None  # None: unchanged
    refusal: Refusal | None = None
