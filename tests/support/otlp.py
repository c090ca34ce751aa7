"""A real OTLP/gRPC trace collector for tests: it answers the exporter like any collector does
and keeps every export request, as bytes (to search them for what must never be exported) and as
spans."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    span: trace_pb2.Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: _value(kv.value) for kv in self.span.attributes}

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[bytes] = []
        self._server: grpc.Server | None = None
        self.port = 0

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> Collector:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exported_bytes(self) -> bytes:
        with self._lock:
            return b"".join(self.requests)

    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            requests = list(self.requests)
        found = []
        for data in requests:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found.extend(
                        ExportedSpan(str(resource.get("service.name", "")), span)
                        for span in scope_spans.spans
                    )
        return found

    def wait_for(
        self, predicate: Callable[[ExportedSpan], bool], count: int = 1, timeout: float = 15
    ) -> list[ExportedSpan]:
        deadline = time.monotonic() + timeout
        while True:
            matching = [span for span in self.spans() if predicate(span)]
            if len(matching) >= count or time.monotonic() > deadline:
                return matching
            time.sleep(0.05)
