"""Does the processor keep anything per exchange? The ExternalProcessor servicer in-process (no
gRPC, no Envoy), with the benchmark's config and write-ahead audit, driven by 16 concurrent
exchanges shaped as Envoy sends them (E2's 8 KB JSON request and response, the authz decision
in the metadata), every one with its own request and decision ids. Prints the resident memory
and the garbage collector's object count after each round: both stay flat when nothing leaks.

    python bench/processor_memory.py [--rounds 8] [--exchanges 8000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf import struct_pb2
from harness import REPO  # noqa: F401  (puts the checkout on the path)
from workload import PATH, chat_request, extproc_config, json_response

from extproc.app import build_processor
from extproc.audit.sink import AuditSinks
from extproc.decision import Decision, to_metadata
from extproc.geo.writer import write_demo_database
from extproc.processor.mapping import AUTHZ_NAMESPACE
from extproc.processor.service import ExternalProcessorService
from extproc.reload import RuntimeHolder
from extproc.settings import load_config

CONCURRENT = 16


def headers(pairs: list[tuple[str, str]]) -> ep.HttpHeaders:
    values = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
    return ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=values))


def exchange(request: bytes, answer: bytes) -> list[ep.ProcessingRequest]:
    """One exchange's four messages, with ids of its own."""
    request_id = str(uuid.uuid4())
    decision = Decision(
        uuid.uuid4().hex, request_id, "allow", "eu-team-to-eu", "ml-eu may reach eu",
        groups=("ml-eu",), subject="bench", model="demo-echo", target_region="eu",
        source_region="eu", source_country="DE",
    )  # fmt: skip
    values = struct_pb2.Struct()
    values.update(to_metadata(decision))
    metadata = base_pb2.Metadata(filter_metadata={AUTHZ_NAMESPACE: values})
    asked = [(":method", "POST"), (":path", PATH), (":authority", "127.0.0.1"),
             ("content-type", "application/json"), ("x-request-id", request_id)]  # fmt: skip
    answered = [(":status", "200"), ("content-type", "application/json")]
    return [
        ep.ProcessingRequest(request_headers=headers(asked), metadata_context=metadata),
        ep.ProcessingRequest(
            request_body=ep.HttpBody(body=request, end_of_stream=True), metadata_context=metadata
        ),
        ep.ProcessingRequest(response_headers=headers(answered), metadata_context=metadata),
        ep.ProcessingRequest(
            response_body=ep.HttpBody(body=answer, end_of_stream=True), metadata_context=metadata
        ),
    ]


async def drive(service: ExternalProcessorService, count: int) -> None:
    request, answer = chat_request(), json_response()

    async def one() -> None:
        async def messages() -> AsyncIterator[ep.ProcessingRequest]:
            for message in exchange(request, answer):
                yield message

        async for _ in service.Process(messages(), None):  # type: ignore[arg-type]
            pass

    async def caller(exchanges: int) -> None:
        for _ in range(exchanges):
            await one()

    await asyncio.gather(*(caller(count // CONCURRENT) for _ in range(CONCURRENT)))


def resident_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--exchanges", type=int, default=8000, help="per round")
    args = parser.parse_args()
    os.environ.update(BENCH_MASKING_KEY="m" * 40, BENCH_AUDIT_KEY="a" * 40)
    os.environ.setdefault("BENCH_MODEL_KEY", "bench-upstream-secret")
    uvloop.install()
    with tempfile.TemporaryDirectory(prefix="extproc-memory-") as tmp:
        root = Path(tmp)
        database = write_demo_database(root / "demo.mmdb")
        config = root / "config.yaml"
        config.write_text(extproc_config("http://127.0.0.1:1", str(database), str(root / "audit")))
        sinks = AuditSinks()
        runtime = build_processor(load_config(config), sinks=sinks)
        service = ExternalProcessorService(RuntimeHolder(runtime, lambda: runtime))
        asyncio.run(drive(service, args.exchanges // 2))  # caches and first-use compilation
        gc.collect()
        print(f"warm: {resident_mb():.1f} MB, {len(gc.get_objects()):,} objects", flush=True)
        for round_ in range(1, args.rounds + 1):
            asyncio.run(drive(service, args.exchanges))
            gc.collect()
            print(
                f"after {round_ * args.exchanges:,} exchanges: {resident_mb():.1f} MB, "
                f"{len(gc.get_objects()):,} objects",
                flush=True,
            )
        sinks.close_all()


if __name__ == "__main__":
    main()
