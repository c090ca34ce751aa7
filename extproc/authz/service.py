"""The Envoy Authorization servicer (grpc.aio): CheckRequest → pipeline → CheckResponse.

Every path ends in a CheckResponse: an unexpected error becomes a deny with ``internal_error``,
never an RPC failure that a misconfigured Envoy might treat as an allow.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from extproc.authz.mapping import check_response, request_view
from extproc.authz.pipeline import Answer, AuthzRuntime, RequestView
from extproc.errors import KeyRefreshNeeded
from extproc.policy.decision import Decision
from extproc.reload import RuntimeHolder

log = logging.getLogger("extproc.authz")


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, holder: RuntimeHolder[AuthzRuntime]) -> None:
        self._holder = holder

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> external_auth_pb2.CheckResponse:
        runtime = self._holder.current
        request_id = request.attributes.request.http.id
        view = None
        try:
            view = request_view(request)
            try:
                answer = runtime.decide(view)
            except KeyRefreshNeeded as need:
                await asyncio.to_thread(runtime.keys.refresh, need.issuer_name)
                answer = runtime.decide(view, keys_refreshed=True)
        except Exception as exc:
            log.error(
                "check failed; denying",
                extra={"request_id": request_id, "error_type": type(exc).__name__},
            )
            answer = internal_error_answer(request_id)
        if not answer.allowed:
            self._record_denial(runtime, answer, view)
        return check_response(answer)

    @staticmethod
    def _record_denial(runtime: AuthzRuntime, answer: Answer, view: RequestView | None) -> None:
        log.info(
            "denied",
            extra={
                "request_id": answer.request_id,
                "decision_id": answer.decision_id,
                "status": answer.status,
                "error": answer.error,
                "rule": answer.decision.rule,
            },
        )
        writer = runtime.audit_writer
        if writer is None:
            return
        if view is None:
            view = RequestView(
                request_id=answer.request_id, method="", path="", host="", source_address=""
            )
        if not writer.submit(answer.audit_event(view)):
            log.error(
                "audit queue full; deny event not accepted", extra={"request_id": answer.request_id}
            )


def internal_error_answer(request_id: str) -> Answer:
    decision = Decision("deny", "internal_error", "the gateway could not decide this request", 500)
    return Answer(
        allowed=False,
        status=500,
        decision=decision,
        request_id=request_id,
        decision_id=secrets.token_hex(16),
        error="internal_error",
    )
