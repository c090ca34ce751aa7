"""The cheapest ext_authz or ext_proc server grpc.aio allows: the same stack as extproc's (grpc.aio
on uvloop, one process), answering every message with a constant and doing nothing else. What it
costs per request through Envoy is the floor under extproc's own CPU per request: gRPC's work,
not the gateway's.

    python bench/floor_server.py authz --port 50051
    python bench/floor_server.py processor --port 50052
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2_grpc

ALLOW = external_auth_pb2.CheckResponse(
    status=status_pb2.Status(code=code_pb2.OK),
    ok_response=external_auth_pb2.OkHttpResponse(),
)
# One "continue" per kind of message Envoy sends, each built once.
CONTINUE = {
    "request_headers": ep.ProcessingResponse(request_headers=ep.HeadersResponse()),
    "request_body": ep.ProcessingResponse(request_body=ep.BodyResponse()),
    "request_trailers": ep.ProcessingResponse(request_trailers=ep.TrailersResponse()),
    "response_headers": ep.ProcessingResponse(response_headers=ep.HeadersResponse()),
    "response_body": ep.ProcessingResponse(response_body=ep.BodyResponse()),
    "response_trailers": ep.ProcessingResponse(response_trailers=ep.TrailersResponse()),
}


class ConstantAuthorization(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: Any
    ) -> external_auth_pb2.CheckResponse:
        return ALLOW


class ConstantProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    async def Process(
        self, requests: AsyncIterator[ep.ProcessingRequest], context: Any
    ) -> AsyncIterator[ep.ProcessingResponse]:
        async for request in requests:
            yield CONTINUE[request.WhichOneof("request")]


async def serve(service: str, port: int) -> None:
    server = grpc.aio.server()
    if service == "authz":
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(ConstantAuthorization(), server)
    else:
        external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
            ConstantProcessor(), server
        )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=("authz", "processor"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.install()
    asyncio.run(serve(args.service, args.port))


if __name__ == "__main__":
    main()
