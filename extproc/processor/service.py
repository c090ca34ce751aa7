"""The Envoy ExternalProcessor servicer (grpc.aio): ProcessingRequest stream → Exchange →
ProcessingResponse stream, and one audit event when the exchange ends.

Every failure inside the stream ends in an ImmediateResponse with a JSON error (fail closed);
the audit event is written in a ``finally`` so a cancelled stream is still recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.protobuf import duration_pb2

from extproc import metrics
from extproc.approval.gate import admit
from extproc.approval.rules import held_outcome
from extproc.audit.writer import AuditWriter
from extproc.errors import ApprovalError, Code, DecisionError
from extproc.exchange.machine import Exchange
from extproc.exchange.steps import Hold
from extproc.processor import mapping
from extproc.reload import RuntimeHolder
from extproc.runtime import ProcessorRuntime
from extproc.tracing.notes import note_exchange

log = logging.getLogger("extproc.processor")

HOLD_MARGIN_SECONDS = 5
_WAITING = "this request needs a human approval; ask an approver to review it, then retry"

T = TypeVar("T")
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
                    hold = exchange.pending_hold
                    if hold is not None and response is not None and not done:
                        held_at = time.monotonic()
                        async for extend in _held(runtime, exchange, hold):
                            yield extend  # Envoy's message timeout, stretched for the hold
                        _count_hold(exchange, time.monotonic() - held_at)
                        if exchange.refusal is not None:
                            response = mapping.immediate(exchange.refusal, exchange.request_id)
                            done = True
                        else:
                            mapping.add_request_headers(response, exchange.released_headers)
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
        step = exchange.request_headers(
            mapping.headers(request.request_headers), request.request_headers.end_of_stream
        )
        if step.refusal:
            return mapping.immediate(step.refusal, exchange.request_id), True
        return mapping.request_headers_response(step), False
    if kind == "request_body":
        body_step = exchange.request_body(request.request_body.body)
        if body_step.refusal:
            return mapping.immediate(body_step.refusal, exchange.request_id), True
        return mapping.request_body_response(body_step), False
    if kind == "response_headers":
        step = exchange.response_headers(
            mapping.headers(request.response_headers), request.response_headers.end_of_stream
        )
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


async def _held(
    runtime: ProcessorRuntime, exchange: Exchange, hold: Hold
) -> AsyncIterator[ep.ProcessingResponse]:
    """Find a grant or open (or join) the approval, hold the request while an approver decides
    (any process on the same store may decide), then release it or refuse it. Fails closed: no
    store, no release."""
    store, waiter = runtime.approvals, runtime.waiter
    if store is None or waiter is None:
        exchange.not_released(Code.APPROVALS_UNAVAILABLE, "no approvals store is configured")
        return
    decision, policy = hold.decision, hold.policy
    try:
        admission = await asyncio.to_thread(
            admit,
            store,
            decision,
            policy,
            method=exchange.method,
            path=exchange.path,
            route=f"{decision.target_region}:{exchange.path}",
            body=hold.body,
            justification=exchange.justification,
            now=runtime.clock.wall(),
        )
    except ApprovalError as exc:
        exchange.not_released(exc.code, exc.reason)
        return
    if admission.grant is not None:
        _release(exchange, admission.grant.id)
        return
    pending = admission.pending
    assert pending is not None
    if policy.hold_seconds <= 0:
        exchange.not_released(Code.APPROVAL_REQUIRED, _WAITING, pending.id)
        return
    # One extension per processing state, bounded by Envoy's max_message_timeout: the answer
    # comes before it runs out (a structured 403, never Envoy's timeout error).
    timeout = duration_pb2.Duration(seconds=int(policy.hold_seconds) + HOLD_MARGIN_SECONDS)
    yield ep.ProcessingResponse(override_message_timeout=timeout)
    approval = await waiter.wait_resolved(pending.id, policy.hold_seconds)
    code = held_outcome(approval, runtime.clock.wall())
    if code is None:
        _release(exchange, approval.id)
    elif code == Code.APPROVAL_DENIED:
        exchange.not_released(code, approval.resolve_reason or "an approver denied it", approval.id)
    else:
        exchange.not_released(code, _WAITING, approval.id)


def _count_hold(exchange: Exchange, seconds: float) -> None:
    refusal = exchange.refusal
    if refusal is None:
        result = "released"
    elif refusal.error == Code.APPROVAL_REQUIRED:
        result = "required"
    elif refusal.error == Code.APPROVAL_DENIED:
        result = "denied"
    else:
        result = "refused"
    metrics.APPROVAL_HOLDS.labels(result).inc()
    metrics.APPROVAL_HOLD_SECONDS.observe(seconds)


def _release(exchange: Exchange, approval_id: str) -> None:
    released = exchange.release(approval_id)
    if not isinstance(released, tuple):
        return  # refused: the exchange holds the refusal
    exchange.released_headers = released


async def _open(runtime: ProcessorRuntime, exchange: Exchange) -> bool:
    """Write-ahead: the exchange's opening record, durable (fsynced, shared with every record
    that arrives meanwhile) before the request may reach the model."""
    writer = runtime.audit
    future = await _submit(writer, writer.open_exchange, exchange.open_event())
    durable: Future[Any] = future  # typed Future[bool]; wrap_future wants Future[object]
    return bool(await asyncio.wrap_future(durable))


async def _record(runtime: ProcessorRuntime, exchange: Exchange) -> None:
    """The closing record (the exchange's one event in after_exchange mode). An opened
    exchange has room kept for it; otherwise a full queue is waited on off the event loop."""
    event = exchange.audit_event()
    if event is None:
        return
    _count(exchange, event)
    note_exchange(event)  # the span's attributes, when tracing is on
    writer = runtime.audit
    if runtime.recordings is not None and exchange.recorder is not None:
        event["recording"] = await _save_recording(runtime, exchange, writer.chain)
    accepted = await _submit(writer, writer.close_exchange, event)
    if not accepted:
        # Under ``deny`` new exchanges are refused (``accepting``) until the queue drains.
        log.error("audit queue full; event not accepted", extra={"request_id": exchange.request_id})


async def _save_recording(
    runtime: ProcessorRuntime, exchange: Exchange, chain: str
) -> dict[str, Any]:
    """The exchange's recording, written before its closing event, and that event's
    ``recording`` field: its digest, or the error (a recording never costs the event)."""
    assert runtime.recordings is not None
    try:
        document = exchange.recording()
        if document is None:
            return {"error": "not_recorded"}
        saved: Future[Any] = runtime.recordings.save(document, chain)
        result: dict[str, Any] = await asyncio.wrap_future(saved)
    except Exception as exc:
        log.error("session recording failed", extra={"error_type": type(exc).__name__})
        result = {"error": f"failed: {type(exc).__name__}"}
    metrics.RECORDINGS.labels("failed" if "error" in result else "written").inc()
    return result


async def _submit(
    writer: AuditWriter, call: Callable[[dict[str, Any]], T], event: dict[str, Any]
) -> T:
    """``call(event)`` at once while the writer has room; with a full queue, ``block`` may wait
    for room, so off the event loop: other exchanges keep moving meanwhile."""
    if writer.queue_depth < writer.settings.queue_max_events:
        return call(event)
    return await asyncio.to_thread(call, event)


def _count(exchange: Exchange, event: dict[str, Any]) -> None:
    metrics.EXCHANGES.labels(event.get("outcome", "denied"), event.get("error", "")).inc()
    metrics.EXCHANGE_SECONDS.observe(event.get("duration_ms", 0.0) / 1000)
    metrics.record_findings(event.get("findings", {}))
    refused = exchange.refusal is not None and exchange.refusal.error == Code.PROMPT_BLOCKED
    if exchange.blocked is not None and refused:  # a content hold is not a block
        metrics.BLOCKED.labels(exchange.blocked.rule).inc()
