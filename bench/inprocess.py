"""In-process costs, without gRPC or Envoy, with the same config the services run: one Check
(parse the CheckRequest, decide with a cached token, map and serialize the CheckResponse), the
20-rule policy alone, and masking (µs per body and MB/s).

Each operation is timed call by call (perf_counter_ns) after a warm-up; the report gives the
median and the 99th percentile per call."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envoy.config.core.v3 import address_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from envoy_scenarios import ROUTE_CONTEXT
from masking_bench import dense_chat_request, dense_variants
from workload import (
    CLIENT_ADDRESS,
    PATH,
    chat_request,
    json_response,
    numbers_json,
    plain_text,
    sse_events,
)

from extproc.app import build_authz
from extproc.authz.mapping import request_view
from extproc.authz.wire import check_response_bytes
from extproc.masking.engine import Masker
from extproc.masking.stream import SseMasker
from extproc.settings import load_config


@dataclass(frozen=True)
class Timing:
    name: str
    p50_us: float
    p99_us: float
    size: int = 0  # bytes per call, for masking

    @property
    def mb_s(self) -> float:
        return self.size / self.p50_us if self.size and self.p50_us else 0.0


def timed(name: str, call: Callable[[], object], calls: int, size: int = 0) -> Timing:
    for _ in range(max(3, calls // 10)):
        call()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        call()
        samples.append(clock() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[min(len(samples) - 1, len(samples) * 99 // 100)] / 1000
    return Timing(name, round(p50, 2), round(p99, 2), size)


def check_request(token: str, body: bytes) -> bytes:
    """The CheckRequest Envoy sends for the benchmark's request (headers, start of the body,
    the route's context extensions), serialized."""
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "x-request-id": "9b1c3e0a-0000-4000-8000-000000000001",
        "x-forwarded-for": CLIENT_ADDRESS,
        "x-extproc-client-address": CLIENT_ADDRESS,
    }
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id="1", method="POST", path=PATH, host="127.0.0.1", headers=headers, raw_body=body
    )
    peer = attribute_context_pb2.AttributeContext.Peer(
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1"))
    )
    request = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=peer,
            request=attribute_context_pb2.AttributeContext.Request(http=http),
            context_extensions=ROUTE_CONTEXT,
        )
    )
    return request.SerializeToString()


def authz_timings(config: Path, token: str, calls: int) -> list[Timing]:
    authorizer = build_authz(load_config(config)).authorizer
    wire = check_request(token, chat_request())
    view = request_view(external_auth_pb2.CheckRequest.FromString(wire))
    answer = authorizer.decide(view)
    assert answer.allowed, answer.decision
    assert answer.decision.rule == "eu-team-to-eu", answer.decision
    facts = answer.facts
    assert facts is not None

    def check() -> bytes:
        parsed = external_auth_pb2.CheckRequest.FromString(wire)
        return check_response_bytes(authorizer.decide(request_view(parsed)))

    bodiless = check_request(token, b"")

    def check_without_body() -> bytes:
        parsed = external_auth_pb2.CheckRequest.FromString(bodiless)
        return check_response_bytes(authorizer.decide(request_view(parsed)))

    return [
        timed("Check without gRPC (parse, decide, map, serialize)", check, calls),
        timed("Check without gRPC, a request without a body", check_without_body, calls),
        timed("decide (cached JWT, GeoIP, 20-rule policy)", lambda: authorizer.decide(view), calls),
        timed("policy alone (20 rules, the last allows)", lambda: authorizer.policy.evaluate(facts), calls * 5),
    ]  # fmt: skip


def masking_timings(config: Path, calls: int) -> list[Timing]:
    masking = load_config(config).masking
    assert masking is not None
    profile = masking.profiles[masking.default_profile]
    masker = Masker(profile, masking.key)
    events = sse_events()

    def fresh() -> Masker:
        return Masker(profile, masking.key)

    # A dense chat request whose every number is new (a busy service never sees its order ids
    # and timestamps twice), on a masker that has masked 300 others first.
    for variant in dense_variants(300, seed=1):
        masker.mask_json(variant, "request")
    next_variant = itertools.cycle(dense_variants(1_300)).__next__

    def stream() -> bytes:
        sse = SseMasker(masker, "response")
        out = b"".join(sse.feed(event) for event in events)
        return out + sse.finish()

    cases: list[tuple[str, bytes, Callable[[bytes], object]]] = [
        ("JSON 8 KB, records with PII", json_response(), lambda b: masker.mask_json(b, "response")),
        ("JSON 256 KB, records with PII", json_response(256 * 1024), lambda b: masker.mask_json(b, "response")),
        ("JSON 8 KB, chat request (E2's)", chat_request(), lambda b: masker.mask_json(b, "request")),
        ("JSON 8 KB, chat request dense with numbers, a card and an e-mail", dense_chat_request(), lambda b: masker.mask_json(b, "request")),
        # A fresh masker per call: nothing from the span and masked-value caches, as when every
        # turn of the conversation is new.
        ("JSON 8 KB, dense chat request, cold caches", dense_chat_request(), lambda b: fresh().mask_json(b, "request")),
        ("JSON 8 KB, dense chat request, every value new", dense_chat_request(), lambda _b: masker.mask_json(next_variant(), "request")),
        ("JSON 8 KB, numbers, no PII", numbers_json(), lambda b: masker.mask_json(b, "response")),
        ("text 8 KB, no PII", plain_text(), lambda b: masker.mask_bytes_as_text(b, "request")),
        ("SSE 200 events, one feed each (E3's)", b"".join(events), lambda _b: stream()),
    ]  # fmt: skip
    out = []
    for name, body, run in cases:
        repeat = max(5, calls * 8 * 1024 // (len(body) * 20))
        out.append(timed(name, lambda r=run, b=body: r(b), repeat, len(body)))
    return out
