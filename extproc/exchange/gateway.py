"""Envoy's own answers (a body over the limit, a request timeout, authz unreachable), which
pass the processor only on their way back to the client."""

from __future__ import annotations

import orjson

from extproc.audit.event import Refusal
from extproc.errors import Code


def gateway_answer(body: bytes, status: int) -> tuple[Refusal, str] | None:
    """The refusal an answer of Envoy's records and its request id, when the answer has the
    shape of the gateway's deny bodies (envoy.yaml's local_reply_config); None otherwise: a body
    of any other shape is no evidence of a code, and the event keeps the bare status."""
    try:
        answer = orjson.loads(body)
        error = Code(answer["error"])
        request_id = answer.get("request_id")
        reason = answer.get("reason")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    refusal = Refusal(error, reason if isinstance(reason, str) else "", "gateway", status)
    return refusal, request_id if isinstance(request_id, str) else ""
