"""OpenTelemetry for one worker process: a tracer provider exporting over OTLP/gRPC, and a
grpc.aio server interceptor that opens one SERVER span per RPC (a Check, a whole Process stream,
an approvals call).

Imported only when the config enables tracing (``extproc.server`` imports it lazily), so with
tracing off no OpenTelemetry module is loaded and no interceptor sits on the hot path.

Spans follow the OpenTelemetry semantic conventions for RPC and gRPC, version 1.45.0 (the
stable RPC conventions): span name ``{rpc.method}``, kind SERVER, ``rpc.system.name`` ``grpc``,
``rpc.method`` the fully-qualified ``package.Service/Method``, ``rpc.status_code`` the status
name (``OK``), ``error.type`` and an error status only for the codes a gRPC server counts as its
own failure, ``network.peer.address``/``network.peer.port`` of the caller. ``server.address`` is
left out: the conventions want it from the ``:authority`` the client used, which grpc Python does
not expose to a server. Our own attributes are under ``extproc.`` (see ``notes``).

The parent: the trace context of the gRPC call's metadata (Envoy puts its ext_authz/ext_proc
client span there when Envoy traces), else the one in the HTTP request headers the call carries
(the client's ``traceparent``, which Envoy forwards to authz and the processor), else none.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from extproc.tracing.abandoned import closed_when_done
from extproc.tracing.notes import open_notes
from extproc.tracing.settings import TracingConfig

log = logging.getLogger("extproc.tracing")

SEMCONV_VERSION = "1.45.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
INSTRUMENTATION = "extproc"
# Health checks run every few seconds per worker: spans of them would only be noise.
UNTRACED_PREFIX = "/grpc.health.v1.Health/"
# The only stream whose first message carries the HTTP request's headers; it is read before the
# span opens (the servicer waits for it anyway), for the parent it may name.
PROCESS_METHOD = "envoy.service.ext_proc.v3.ExternalProcessor/Process"
# Status codes that mean the server failed (semantic conventions, gRPC server span); any other
# code, such as CANCELLED or PERMISSION_DENIED, is the caller's business and leaves the span's
# status unset.
SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

Behavior = Callable[..., Any]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.ServerInterceptor


class Tracing:
    """One worker's tracer provider: the interceptor to install, and the flush at shutdown."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        tracer = provider.get_tracer(INSTRUMENTATION, schema_url=SCHEMA_URL)
        self.interceptor = ServerSpans(tracer)

    def shutdown(self) -> None:
        """Export what is queued, then stop (blocks up to the exporter's timeout)."""
        self._provider.shutdown()


def start_tracing(config: TracingConfig, service: str, worker: int) -> Tracing:
    """A provider for this process. Each worker calls it after it starts: an exporter's channel
    and the batch processor's thread never cross a process boundary."""
    resource = Resource.create(
        {"service.name": config.service_name_for(service), "extproc.worker": worker},
        schema_url=SCHEMA_URL,
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
    )
    # Headers (a collector's key) come from OTEL_EXPORTER_OTLP_(TRACES_)HEADERS only.
    exporter = OTLPSpanExporter(
        endpoint=config.endpoint, insecure=config.insecure, timeout=config.export_timeout
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info(
        "tracing",
        extra={
            "collector": _without_userinfo(config.endpoint),
            "sample_ratio": config.sample_ratio,
            "worker": worker,
        },
    )
    return Tracing(provider)


def _without_userinfo(endpoint: str) -> str:
    """The collector's address for a log line: never a user or password written into the URL."""
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class ServerSpans(_Interceptor):
    """One SERVER span around each RPC, its attributes set from what the servicer noted."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._propagator = propagate.get_global_textmap()  # OTEL_PROPAGATORS; W3C by default
        self._fields = frozenset(self._propagator.fields)  # the header names it reads

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        full_method: str = handler_call_details.method
        # None: no such method (grpc answers UNIMPLEMENTED); the stubs do not say it can be.
        if handler is None or full_method.startswith(UNTRACED_PREFIX):
            return handler
        method = full_method.removeprefix("/")
        serializers: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            traced = self._unary(method, handler.unary_unary)
            return grpc.unary_unary_rpc_method_handler(traced, **serializers)
        if handler.stream_unary is not None:
            traced = self._unary(method, handler.stream_unary)
            return grpc.stream_unary_rpc_method_handler(traced, **serializers)
        if handler.unary_stream is not None:
            traced = self._streamed(method, handler.unary_stream, peek=False)
            return grpc.unary_stream_rpc_method_handler(traced, **serializers)
        if handler.stream_stream is None:
            return handler
        peek = method == PROCESS_METHOD
        traced = self._streamed(method, handler.stream_stream, peek=peek)
        return grpc.stream_stream_rpc_method_handler(traced, **serializers)

    def _unary(self, method: str, behavior: Behavior) -> Behavior:
        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            span = self._open(method, context, request)
            notes = open_notes()
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                _close(span, context, notes, exc)
                raise
            _close(span, context, notes, None)
            return response

        return traced

    def _streamed(self, method: str, behavior: Behavior, *, peek: bool) -> Behavior:
        async def spanned(
            request: Any,
            context: grpc.aio.ServicerContext[Any, Any],
            home: list[contextvars.Context],
        ) -> AsyncGenerator[Any, None]:
            started = time.time_ns()
            first = None
            if peek:
                request, first = await _peek(request)
            span = self._open(method, context, first if peek else request, started)
            notes = open_notes()
            home.append(contextvars.copy_context())  # the notes' home, should it be closed later
            failure: BaseException | None = None
            try:
                result = behavior(request, context)
                if inspect.isasyncgen(result):
                    try:
                        async for response in result:
                            yield response
                    finally:
                        await result.aclose()  # its own cleanup before the span ends
                else:  # a handler that writes with context.write
                    await result
            except BaseException as exc:
                failure = exc
                raise
            finally:
                _close(span, context, notes, failure)

        async def traced(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            home: list[contextvars.Context] = []
            answers = closed_when_done(context, spanned(request, context, home), home)
            async for response in answers:
                yield response

        return traced

    def _open(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        request: Any,
        started: int | None = None,
    ) -> Span:
        attributes: dict[str, str | int] = {"rpc.system.name": "grpc", "rpc.method": method}
        attributes.update(_peer(context.peer()))
        return self._tracer.start_span(
            method,
            context=self._parent(context.invocation_metadata() or (), request),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=started,
        )

    def _parent(self, metadata: Iterable[tuple[str, Any]], request: Any) -> Context | None:
        """The call's own trace context first (Envoy's client span of this call), then the HTTP
        request's (the client's), else a new trace."""
        fields = self._fields
        carrier = {key.lower(): value for key, value in metadata if key.lower() in fields}
        if carrier:
            context = self._propagator.extract(carrier)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
        headers = _http_headers(request, fields)
        if headers:
            context = self._propagator.extract(headers)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
        return None


async def _peek(requests: AsyncIterator[Any]) -> tuple[AsyncIterator[Any], Any]:
    """The first message of a request stream, and the stream as if it had not been read."""
    iterator = aiter(requests)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return iterator, None

    async def replay() -> AsyncIterator[Any]:
        yield first
        async for request in iterator:
            yield request

    return replay(), first


def _http_headers(request: Any, fields: frozenset[str]) -> dict[str, str]:
    """The trace headers among the HTTP request headers a CheckRequest or the first
    ProcessingRequest carries (only those: no other header value is read)."""
    if isinstance(request, external_auth_pb2.CheckRequest):
        http = request.attributes.request.http
        found = {key: http.headers[key] for key in fields if key in http.headers}
        if found:
            return found
        return _from_list(http.header_map.headers, fields)
    is_processing = isinstance(request, external_processor_pb2.ProcessingRequest)
    if is_processing and request.WhichOneof("request") == "request_headers":
        return _from_list(request.request_headers.headers.headers, fields)
    return {}


def _from_list(headers: Iterable[Any], fields: frozenset[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in headers:
        key = header.key.lower()
        if key in fields:
            found[key] = header.raw_value.decode("utf-8", "replace") or header.value
    return found


def _peer(peer: str | None) -> Mapping[str, str | int]:
    """``ipv4:10.0.0.1:5555`` / ``ipv6:[::1]:5555`` → network.peer.address and .port."""
    if not peer:
        return {}
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return {"network.peer.address": host.strip("[]"), "network.peer.port": int(port)}
    if kind == "unix":
        return {"network.peer.address": rest}
    return {}


def _close(
    span: Span,
    context: grpc.aio.ServicerContext[Any, Any],
    notes: Mapping[str, Any],
    failure: BaseException | None,
) -> None:
    """Status and attributes from how the RPC ended, then end the span. An exception's message
    is never recorded: it could quote a request."""
    if isinstance(failure, (asyncio.CancelledError, GeneratorExit)):
        # GeneratorExit: grpc stopped taking answers because the call ended on the client's side.
        code = "CANCELLED"
    elif failure is not None and not isinstance(failure, grpc.aio.AbortError):
        code = "UNKNOWN"  # what grpc answers for an exception a handler let escape
    else:
        code = _code_name(context.code())
    span.set_attributes(dict(notes))
    span.set_attribute("rpc.status_code", code)
    if code in SERVER_ERRORS:
        span.set_attribute("error.type", code)
        description = type(failure).__name__ if failure is not None else code
        span.set_status(Status(StatusCode.ERROR, description))
    span.end()


def _code_name(code: Any) -> str:
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return str(code)
