"""The Envoy ExternalProcessor servicer (grpc.aio): ProcessingRequest stream → Exchange →
ProcessingResponse stream, and one audit event when the exchange ends.

Every failure inside the stream ends in an ImmediateResponse with a JSON error (fail closed);
the audit event is written in a ``finally`` so a cancelled stream is still recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import orjson
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from extproc.processor.exchange import BodyStep, HeaderStep, Refusal
from extproc.processor.runtime import ProcessorRuntime
from extproc.reload import RuntimeHolder

log = logging.getLogger("extproc.processor")

AUTHZ_NAMESPACE = "envoy.filters.http.ext_authz"
_STREAM_RESPONSE_BODY = processing_mode_pb2.ProcessingMode(
    response_body_mode=processing_mode_pb2.ProcessingMode.STREAMED
)
_JSON_HEADER = base_pb2.HeaderValueOption(
    header=base_pb2.HeaderValue(key="content-type", raw_value=b"application/json")
)


class ExternalProcessorService(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, holder: RuntimeHolder[ProcessorRuntime]) -> None:
        self._holder = holder

    async def Process(
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[ep.ProcessingResponse]:
        runtime = self._holder.current
        exchange = runtime.new_exchange()
        try:
            async for request in request_iterator:
                if not exchange.decision and request.HasField("metadata_context"):
                    # Envoy repeats the metadata on every message; it cannot change mid-stream.
                    namespace = request.metadata_context.filter_metadata.get(AUTHZ_NAMESPACE)
                    if namespace is not None:
                        exchange.add_decision(struct_to_dict(namespace))
                kind = request.WhichOneof("request")
                try:
                    response, done = self._step(exchange, request, kind)
                except Exception as exc:
                    log.error(
                        "processing failed; refusing", extra={"error_type": type(exc).__name__}
                    )
                    refusal = Refusal(
                        500,
                        "processing_failed",
                        "the gateway could not inspect this exchange",
                        "processor",
                    )
                    exchange.refusal = refusal
                    response, done = immediate(refusal, exchange.decision), True
                if response is not None:
                    yield response
                if done:
                    return
        finally:
            await asyncio.shield(runtime.audit(exchange))

    def _step(
        self, exchange: Any, request: ep.ProcessingRequest, kind: str | None
    ) -> tuple[ep.ProcessingResponse | None, bool]:
        if kind == "request_headers":
            step = exchange.request_headers(headers(request.request_headers))
            if step.refusal:
                return immediate(step.refusal, exchange.decision), True
            return ep.ProcessingResponse(request_headers=_headers_response(step)), False
        if kind == "request_body":
            body_step = exchange.request_body(request.request_body.body)
            if body_step.refusal:
                return immediate(body_step.refusal, exchange.decision), True
            return ep.ProcessingResponse(request_body=_body_response(body_step)), False
        if kind == "response_headers":
            step = exchange.response_headers(headers(request.response_headers))
            if step.refusal:
                return immediate(step.refusal, exchange.decision), True
            response = ep.ProcessingResponse(response_headers=_headers_response(step))
            if step.stream_body:
                response.mode_override.CopyFrom(_STREAM_RESPONSE_BODY)
            return response, False
        if kind == "response_body":
            body = request.response_body
            if exchange.streaming:
                body_step = exchange.response_chunk(body.body, body.end_of_stream)
                response = ep.ProcessingResponse(
                    response_body=ep.BodyResponse(
                        response=ep.CommonResponse(
                            body_mutation=ep.BodyMutation(body=body_step.body or b"")
                        )
                    )
                )
                return response, body.end_of_stream
            body_step = exchange.response_body(body.body)
            if body_step.refusal:
                return immediate(body_step.refusal, exchange.decision), True
            return ep.ProcessingResponse(
                response_body=_body_response(body_step)
            ), body.end_of_stream
        if kind == "request_trailers":
            return ep.ProcessingResponse(request_trailers=ep.TrailersResponse()), False
        if kind == "response_trailers":
            return ep.ProcessingResponse(response_trailers=ep.TrailersResponse()), True
        return None, False


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Struct → plain values (json_format.MessageToDict is several times slower)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return value.number_value
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    return None


def headers(message: ep.HttpHeaders) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in message.headers.headers:
        value = header.raw_value.decode("utf-8", "replace") if header.raw_value else header.value
        out[header.key.lower()] = value
    return out


def _headers_response(step: HeaderStep) -> ep.HeadersResponse:
    common = ep.CommonResponse()
    if step.remove:
        common.header_mutation.remove_headers.extend(step.remove)
    return ep.HeadersResponse(response=common)


def _body_response(step: BodyStep) -> ep.BodyResponse:
    if step.body is None:
        return ep.BodyResponse(response=ep.CommonResponse())
    return ep.BodyResponse(
        response=ep.CommonResponse(body_mutation=ep.BodyMutation(body=step.body))
    )


def immediate(refusal: Refusal, decision: Mapping[str, Any]) -> ep.ProcessingResponse:
    body = orjson.dumps(
        {
            "error": refusal.error,
            "reason": refusal.reason,
            "rule": refusal.rule,
            "request_id": decision.get("request_id", ""),
        }
    )
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=refusal.status),
            headers=ep.HeaderMutation(set_headers=[_JSON_HEADER]),
            body=body,
            details=f"extproc_{refusal.error}",
        )
    )
