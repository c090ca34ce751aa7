"""The ExternalProcessor servicer in-process: a real gRPC client streams real ProcessingRequests,
with the authz decision in the metadata the way Envoy forwards it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.protobuf import struct_pb2

from extproc.app import build_processor
from extproc.audit.read import read_events
from extproc.audit.sink import AuditSinks
from extproc.decision import Decision, to_metadata
from extproc.errors import Code, ConfigError
from extproc.geo.writer import write_demo_database
from extproc.processor.mapping import AUTHZ_NAMESPACE
from extproc.processor.service import ExternalProcessorService
from extproc.reload import RuntimeHolder
from extproc.runtime import ProcessorRuntime
from extproc.settings import load_config
from extproc.tracing.otel import start_tracing
from extproc.tracing.settings import TracingConfig
from tests.support.otlp import Collector

CONFIG = """\
version: 1
identity:
  issuers:
    - {name: demo, issuer: "https://issuer.example", jwks_file: jwks.json,
       audiences: [api], algorithms: [RS256]}
geo:
  database: demo.mmdb
  regions: {eu: [DE]}
policy:
  rules: []
masking:
  key_file: masking.key
  profiles:
    standard:
      actions: {default: redact}
audit:
  directory: audit
  key_file: audit.key
  flush_interval_ms: 1
"""
ALLOWED = Decision("d-1", "req-1", "allow", "eu-team", "ml-eu may reach eu", groups=("ml-eu",))
CARD_BODY = b'{"messages": [{"role": "user", "content": "card 4111 1111 1111 1111"}]}'


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[ProcessorRuntime, AuditSinks]]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "masking.key").write_bytes(b"m" * 32)
    (tmp_path / "audit.key").write_bytes(b"a" * 32)
    write_demo_database(tmp_path / "demo.mmdb")
    sinks = AuditSinks()
    yield build_processor(load_config(tmp_path / "config.yaml"), sinks=sinks), sinks
    sinks.close_all()


def metadata(values: dict[str, Any]) -> base_pb2.Metadata:
    struct = struct_pb2.Struct()
    struct.update(values)
    return base_pb2.Metadata(filter_metadata={AUTHZ_NAMESPACE: struct})


def headers(**values: str) -> ep.HttpHeaders:
    return ep.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key=k.replace("_", "-"), raw_value=v.encode())
                for k, v in values.items()
            ]
        )
    )


def exchange_messages(decision: dict[str, Any] | None) -> list[ep.ProcessingRequest]:
    context = metadata(decision) if decision is not None else None
    request_headers = headers(
        **{":method": "POST", ":path": "/v1/chat?key=x"},
        content_type="application/json",
        x_request_id="req-1",
    )
    return [
        ep.ProcessingRequest(request_headers=request_headers, metadata_context=context),
        ep.ProcessingRequest(
            request_body=ep.HttpBody(body=CARD_BODY, end_of_stream=True),
            metadata_context=context,
        ),
        ep.ProcessingRequest(
            response_headers=headers(**{":status": "200"}, content_type="text/plain"),
            metadata_context=context,
        ),
        ep.ProcessingRequest(
            response_body=ep.HttpBody(body=b"mail jane@example.com", end_of_stream=True),
            metadata_context=context,
        ),
    ]


@contextlib.asynccontextmanager
async def serving(runtime: ProcessorRuntime, interceptors: Any = ()) -> AsyncIterator[int]:
    """The servicer on a real gRPC server, on a free port it yields (stopped on exit)."""
    server = grpc.aio.server(interceptors=interceptors)
    holder = RuntimeHolder(runtime, lambda: runtime)
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExternalProcessorService(holder), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(1)


def process(
    runtime: ProcessorRuntime, messages: list[ep.ProcessingRequest]
) -> list[ep.ProcessingResponse]:
    """Drive the servicer as Envoy does: each message waits for the answer to the one before,
    and nothing more is sent after an immediate response (the stream is over)."""

    async def scenario() -> list[ep.ProcessingResponse]:
        async with (
            serving(runtime) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
            call = stub.Process()
            responses: list[ep.ProcessingResponse] = []
            for message in messages:
                await call.write(message)
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                responses.append(response)
                if response.HasField("immediate_response"):
                    break
            await call.done_writing()
            while (rest := await call.read()) is not grpc.aio.EOF:
                responses.append(rest)
            return responses

    return asyncio.run(scenario())


def events(runtime: ProcessorRuntime, sinks: AuditSinks) -> list[dict[str, Any]]:
    sinks.close_all()  # flushes every accepted event
    audit = runtime.config.audit
    assert audit is not None
    return list(read_events([audit.directory]))


def test_an_allowed_exchange_is_masked_both_ways_and_audited_once(
    runtime: tuple[ProcessorRuntime, AuditSinks],
) -> None:
    processor, sinks = runtime
    responses = process(processor, exchange_messages(to_metadata(ALLOWED)))
    assert [r.WhichOneof("response") for r in responses] == [
        "request_headers",
        "request_body",
        "response_headers",
        "response_body",
    ]
    removed = responses[0].request_headers.response.header_mutation.remove_headers
    assert list(removed) == ["content-length"]
    masked_request = responses[1].request_body.response.body_mutation.body
    assert json.loads(masked_request)["messages"][0]["content"] == "card [REDACTED:CARD]"
    assert responses[3].response_body.response.body_mutation.body == b"mail [REDACTED:EMAIL]"
    (event,) = events(processor, sinks)
    assert (event["outcome"], event["effect"], event["decision_id"]) == ("allowed", "allow", "d-1")
    assert event["findings"] == {"request.CARD": 1, "response.EMAIL": 1}
    assert event["path"] == "/v1/chat"


def test_an_exchange_without_a_decision_is_refused_and_audited(
    runtime: tuple[ProcessorRuntime, AuditSinks],
) -> None:
    processor, sinks = runtime
    responses = process(processor, exchange_messages(None))
    (only,) = responses
    immediate = only.immediate_response
    assert immediate.status.code == 403
    assert json.loads(immediate.body) == {
        "error": "no_authorization_decision",
        "reason": "no authorization decision reached the processor",
        "rule": "processor",
        "request_id": "req-1",
    }
    (event,) = events(processor, sinks)
    assert (event["outcome"], event["error"]) == ("denied", "no_authorization_decision")


@pytest.mark.parametrize(
    "forged",
    [
        {"groups": "ml-eu"},
        {"groups": [1, 2]},
        {"effect": "maybe"},
        {"status": "200"},
        {"error": "not_a_code"},
        {"dry_run": [{"rule": "x", "effect": "shrug"}]},
        {"decision_id": ""},
        {"enforced": "yes"},
    ],
)
def test_a_malformed_decision_is_refused_cleanly_and_audited(
    runtime: tuple[ProcessorRuntime, AuditSinks], forged: dict[str, Any]
) -> None:
    processor, sinks = runtime
    responses = process(processor, exchange_messages({**to_metadata(ALLOWED), **forged}))
    (only,) = responses
    assert only.immediate_response.status.code == 403
    assert json.loads(only.immediate_response.body)["error"] == "invalid_authorization_decision"
    (event,) = events(processor, sinks)
    assert (event["outcome"], event["error"]) == ("denied", "invalid_authorization_decision")


def test_a_dry_run_decision_goes_on_and_is_audited_as_dry_run(
    runtime: tuple[ProcessorRuntime, AuditSinks],
) -> None:
    processor, sinks = runtime
    shadow = ALLOWED._replace(effect="deny", rule="us-shadow", enforced=False)
    responses = process(processor, exchange_messages(to_metadata(shadow)))
    assert len(responses) == 4
    (event,) = events(processor, sinks)
    assert (event["outcome"], event["effect"], event["rule"]) == ("dry_run", "deny", "us-shadow")


def test_a_denied_decision_that_reaches_the_processor_is_not_let_through(
    runtime: tuple[ProcessorRuntime, AuditSinks],
) -> None:
    processor, sinks = runtime
    denied = ALLOWED._replace(effect="deny", status=403, error=Code.FORBIDDEN, rule="no")
    (only,) = process(processor, exchange_messages(to_metadata(denied)))
    assert only.immediate_response.status.code == 403
    (event,) = events(processor, sinks)
    assert event["outcome"] == "denied"


def test_the_opening_record_is_durable_before_the_request_may_go_on(
    runtime: tuple[ProcessorRuntime, AuditSinks],
) -> None:
    """Write-ahead audit: by the time the processor lets the request headers through, the
    exchange's opening record is on disk; a worker killed after that leaves an exchange that
    verify lists as opened and never closed, never a served request without a record."""
    processor, _sinks = runtime
    assert processor.write_ahead
    audit = processor.config.audit
    assert audit is not None

    async def scenario() -> list[dict[str, Any]]:
        async with (
            serving(processor) as port,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            call = external_processor_pb2_grpc.ExternalProcessorStub(channel).Process()
            await call.write(exchange_messages(to_metadata(ALLOWED))[0])
            response = await call.read()
            assert response.WhichOneof("response") == "request_headers"
            on_disk = list(read_events([audit.directory], opens=True))
            await call.done_writing()
            return on_disk

    on_disk = asyncio.run(scenario())
    assert [(e.get("kind"), e["request_id"]) for e in on_disk] == [("open", "req-1")]


def test_a_recorded_exchange_binds_its_masked_recording_to_its_closing_event(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG + "  recording: {enabled: true}\n")
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "masking.key").write_bytes(b"m" * 32)
    (tmp_path / "audit.key").write_bytes(b"a" * 32)
    write_demo_database(tmp_path / "demo.mmdb")
    sinks = AuditSinks()
    processor = build_processor(load_config(tmp_path / "config.yaml"), sinks=sinks)
    process(processor, exchange_messages(to_metadata(ALLOWED)))
    (event,) = events(processor, sinks)
    recording = event["recording"]
    assert recording["file"].startswith("recordings/")
    data = (tmp_path / "audit" / recording["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == recording["sha256"]
    assert b"4111" not in data
    assert b"jane@example.com" not in data
    assert b"[REDACTED:CARD]" in data


def test_a_recording_that_cannot_be_written_leaves_its_audit_event_whole(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG + "  recording: {enabled: true}\n")
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "masking.key").write_bytes(b"m" * 32)
    (tmp_path / "audit.key").write_bytes(b"a" * 32)
    write_demo_database(tmp_path / "demo.mmdb")
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "recordings").write_text("not a directory: every write fails")
    sinks = AuditSinks()
    processor = build_processor(load_config(tmp_path / "config.yaml"), sinks=sinks)
    responses = process(processor, exchange_messages(to_metadata(ALLOWED)))
    assert len(responses) == 4  # the exchange itself is unaffected
    (event,) = events(processor, sinks)
    assert event["outcome"] == "allowed"
    assert event["recording"]["error"].startswith("write_failed")


def test_recording_a_profile_the_config_does_not_define_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        CONFIG + "  recording: {enabled: true, profiles: [phi]}\n"
    )
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "masking.key").write_bytes(b"m" * 32)
    (tmp_path / "audit.key").write_bytes(b"a" * 32)
    with pytest.raises(ConfigError, match=r"audit\.recording\.profiles\[0\]: no masking profile"):
        load_config(tmp_path / "config.yaml")


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_an_exchange_reset_while_its_answers_are_sent_is_recorded_without_waiting_for_the_gc(
    runtime: tuple[ProcessorRuntime, AuditSinks], traced: bool
) -> None:
    """Envoy resets a stream (its client went away) while the processor is still sending masked
    chunks of a streamed answer: grpc drops the handler's generator mid-``yield``. The exchange's
    closing record must not wait for a garbage collection, which may come late or, at exit,
    never; with tracing on, neither may the span, and it is a cancellation, not an error."""
    processor, _sinks = runtime
    collector = Collector().start()
    tracing = start_tracing(TracingConfig(enabled=True, endpoint=collector.endpoint), "p", 0)
    interceptors = (tracing.interceptor,) if traced else ()
    audit = processor.config.audit
    assert audit is not None
    opening, request_body, *_rest = exchange_messages(to_metadata(ALLOWED))
    context = opening.metadata_context
    stream_headers = ep.ProcessingRequest(
        response_headers=headers(**{":status": "200"}, content_type="text/event-stream"),
        metadata_context=context,
    )
    event = b'data: {"delta": "card 4111 1111 1111 1111"}\n\n'
    chunk = ep.ProcessingRequest(
        response_body=ep.HttpBody(body=event * 20_000),
        metadata_context=context,  # ~1 MB
    )

    async def closing_events() -> list[dict[str, Any]]:
        for _ in range(200):
            found = [e for e in read_events([audit.directory]) if e.get("kind") != "open"]
            if found:
                return found
            await asyncio.sleep(0.05)
        return []

    async def scenario() -> tuple[int, list[dict[str, Any]]]:
        async with serving(processor, interceptors) as port:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = external_processor_pb2_grpc.ExternalProcessorStub(channel).Process()
                for message in (opening, request_body, stream_headers):
                    await call.write(message)
                    assert (await call.read()).WhichOneof("response") is not None
                written = 0
                while written < 100:  # until the unread answers fill every buffer on the way
                    try:
                        await asyncio.wait_for(call.write(chunk), 1)
                    except TimeoutError:
                        break
                    written += 1
                call.cancel()
            return written, await closing_events()

    gc.disable()  # a collection would hide the bug: it closes what grpc left behind
    try:
        written, closing = asyncio.run(scenario())
    finally:
        gc.enable()
        tracing.shutdown()
        collector.stop()
    assert written < 100, "the processor's answers never filled the buffers: nothing was tested"
    assert [(e["request_id"], e["outcome"]) for e in closing] == [("req-1", "allowed")]
    assert closing[0]["error"] == "exchange_incomplete"  # the answer was cut off
    if traced:
        (span,) = collector.spans()
        assert span.attributes["rpc.status_code"] == "CANCELLED"
        assert "error.type" not in span.attributes
        # The exchange's notes, written while it was closed from outside its call, are there.
        assert span.attributes["extproc.outcome"] == "allowed"
