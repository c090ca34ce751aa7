"""The Envoy Authorization servicer (grpc.aio): CheckRequest → pipeline → CheckResponse.

The answer leaves as bytes already in protobuf's wire format (``wire.check_response_bytes``),
so the method is registered with a pass-through serializer (``add_to_server``).

Every path ends in a CheckResponse: an unexpected error becomes a deny with ``internal_error``,
never an RPC failure that a misconfigured Envoy might treat as an allow. Denials are audited
here, with the one event builder both services share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from extproc import metrics
from extproc.audit.event import build_event
from extproc.authz.mapping import request_view
from extproc.authz.wire import check_response_bytes
from extproc.decide.answer import Answer
from extproc.decide.pipeline import internal_error
from extproc.decide.request import RequestView
from extproc.errors import KeyRefreshNeeded
from extproc.masking.url import mask_target
from extproc.reload import RuntimeHolder
from extproc.runtime import AuthzRuntime
from extproc.tracing.notes import note_decision

log = logging.getLogger("extproc.authz")


SERVICE_NAME = "envoy.service.auth.v3.Authorization"


def add_to_server(service: AuthorizationService, server: grpc.aio.Server) -> None:
    """Register Check as the generated code would, but taking the answer's bytes as they are."""
    check = grpc.unary_unary_rpc_method_handler(
        service.Check,
        request_deserializer=external_auth_pb2.CheckRequest.FromString,
        response_serializer=None,  # Check returns the serialized CheckResponse
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Check": check}),)
    )


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, holder: RuntimeHolder[AuthzRuntime]) -> None:
        self._holder = holder

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        runtime = self._holder.current
        started = time.perf_counter()
        view = None
        try:
            view = request_view(request)
            try:
                answer = runtime.authorizer.decide(view)
            except KeyRefreshNeeded as need:
                await asyncio.to_thread(runtime.keys.refresh, need.issuer_name)
                answer = runtime.authorizer.decide(view, keys_refreshed=True)
        except Exception as exc:
            request_id = view.request_id if view else str(request.attributes.request.http.id)
            log.error(
                "check failed; denying",
                extra={"request_id": request_id, "error_type": type(exc).__name__},
            )
            answer = internal_error(request_id, runtime.new_id())
        try:
            response = check_response_bytes(answer)
        except UnicodeEncodeError:  # a lone surrogate (a token's claim) has no UTF-8 form
            log.error("answer not encodable; denying", extra={"request_id": answer.request_id})
            answer = internal_error(answer.request_id, runtime.new_id())
            response = check_response_bytes(answer)
        if not answer.allowed:
            _record_denial(runtime, answer, view)
        decision = answer.decision
        note_decision(decision)  # the span's attributes, when tracing is on
        metrics.DECISIONS.labels(
            decision.effect, decision.outcome, decision.rule, decision.error or ""
        ).inc()
        metrics.CHECK_SECONDS.observe(time.perf_counter() - started)
        return response


def _record_denial(runtime: AuthzRuntime, answer: Answer, view: RequestView | None) -> None:
    decision = answer.decision
    log.info(
        "denied",
        extra={
            "request_id": decision.request_id,
            "decision_id": decision.decision_id,
            "status": decision.status,
            "error": decision.error,
            "rule": decision.rule,
        },
    )
    writer = runtime.audit
    if writer is None:
        return
    path = view.path if view else ""
    if runtime.url_masker is not None and path:
        path = mask_target(runtime.url_masker, path)[0]  # segments can carry ids and addresses
    event = build_event(
        service="authz",
        time=runtime.clock.timestamp(),
        decision=decision,
        method=view.method if view else "",
        path=path,
    )
    if not writer.submit(event):
        log.error(
            "audit queue full; deny event not accepted", extra={"request_id": decision.request_id}
        )
