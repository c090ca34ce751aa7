"""The Envoy ExternalProcessor servicer (grpc.aio): ProcessingRequest stream → Exchange →
ProcessingResponse stream, and one audit event when the exchange ends.

Every failure inside the stream ends in an ImmediateResponse with a JSON error (fail closed);
the audit event is written in a ``finally`` so a cancelled stream is still recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from extproc import metrics
from extproc.errors import DecisionError
from extproc.exchange.machine import Exchange
from extproc.processor import mapping
from extproc.reload import RuntimeHolder
from extproc.runtime import ProcessorRuntime

log = logging.getLogger("extproc.processor")

Reply = tuple[ep.ProcessingResponse | None, bool]  # the response, and whether the stream ends


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
        decided = False
        opened: bool | None = None  # the opening record: None not written, else durable or not
        try:
            async for request in request_iterator:
                if not decided:
                    # Envoy repeats the metadata on every message; it cannot change mid-stream.
                    decided = _read_decision(exchange, request)
                try:
                    response, done = _step(exchange, request)
                    if runtime.write_ahead and opened is None and not done and exchange.forwarding:
                        opened = await _open(runtime, exchange)
                        if not opened:
                            response = mapping.immediate(exchange.unrecorded(), exchange.request_id)
                            done = True
                except Exception as exc:
                    log.error(
                        "processing failed; refusing", extra={"error_type": type(exc).__name__}
                    )
                    refusal = exchange.fail("the gateway could not inspect this exchange")
                    response, done = mapping.immediate(refusal, exchange.request_id), True
                if response is not None:
                    yield response
                if done:
                    return
        finally:
            if opened is not False:  # a refused opening leaves its gap record, no closing one
                await asyncio.shield(_record(runtime, exchange))


def _read_decision(exchange: Exchange, request: ep.ProcessingRequest) -> bool:
    try:
        decision = mapping.decision_of(request)
    except DecisionError as exc:
        log.error("malformed authorization decision", extra={"reason": exc.reason})
        exchange.reject_decision(exc.reason)
        return True
    if decision is None:
        return False
    exchange.add_decision(decision)
    return True


def _step(exchange: Exchange, request: ep.ProcessingRequest) -> Reply:
    kind = request.WhichOneof("request")
    if kind == "request_headers":
        step = exchange.request_headers(mapping.headers(request.request_headers))
        if step.refusal:
            return mapping.immediate(step.refusal, exchange.request_id), True
        return mapping.request_headers_response(step), False
    if kind == "request_body":
        body_step = exchange.request_body(request.request_body.body)
        if body_step.refusal:
            return mapping.immediate(body_step.refusal, exchange.request_id), True
        return mapping.request_body_response(body_step), False
    if kind == "response_headers":
        step = exchange.response_headers(mapping.headers(request.response_headers))
        if step.refusal:
            return mapping.immediate(step.refusal, exchange.request_id), True
        return mapping.response_headers_response(step), False
    if kind == "response_body":
        body = request.response_body
        if exchange.streaming:
            chunk_step = exchange.response_chunk(body.body, body.end_of_stream)
            return mapping.streamed_chunk_response(chunk_step), body.end_of_stream
        body_step = exchange.response_body(body.body)
        if body_step.refusal:
            return mapping.immediate(body_step.refusal, exchange.request_id), True
        return mapping.response_body_response(body_step), body.end_of_stream
    if kind == "request_trailers":
        return ep.ProcessingResponse(request_trailers=ep.TrailersResponse()), False
    if kind == "response_trailers":
        return ep.ProcessingResponse(response_trailers=ep.TrailersResponse()), True
    return None, False


async def _open(runtime: ProcessorRuntime, exchange: Exchange) -> bool:
    """Write-ahead: the exchange's opening record, durable (fsynced, shared with every record
    that arrives meanwhile) before the request may reach the model."""
    writer = runtime.audit
    event = exchange.open_event()
    if writer.queue_depth < writer.settings.queue_max_events:
        future = writer.open_exchange(event)
    else:
        future = await asyncio.to_thread(writer.open_exchange, event)
    durable: Future[Any] = future  # typed Future[bool]; wrap_future wants Future[object]
    return bool(await asyncio.wrap_future(durable))


async def _record(runtime: ProcessorRuntime, exchange: Exchange) -> None:
    """The closing record (the exchange's one event in after_exchange mode). An opened
    exchange has room kept for it; otherwise a full queue is waited on off the event loop."""
    event = exchange.audit_event()
    if event is None:
        return
    _count(exchange, event)
    writer = runtime.audit
    if writer.queue_depth < writer.settings.queue_max_events:
        accepted = writer.close_exchange(event)
    else:
        accepted = await asyncio.to_thread(writer.close_exchange, event)
    if not accepted:
        # Under ``deny`` new exchanges are refused (``accepting``) until the queue drains.
        log.error("audit queue full; event not accepted", extra={"request_id": exchange.request_id})


def _count(exchange: Exchange, event: dict[str, Any]) -> None:
    metrics.EXCHANGES.labels(event.get("outcome", "denied"), event.get("error", "")).inc()
    metrics.EXCHANGE_SECONDS.observe(event.get("duration_ms", 0.0) / 1000)
    metrics.record_findings(event.get("findings", {}))
    if exchange.blocked is not None:
        metrics.BLOCKED.labels(exchange.blocked.rule).inc()
