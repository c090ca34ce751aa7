"""Time to first visible content, and the delay each token gets, through the real Envoy.

A paced upstream streams OpenAI chat chunks at a model's rate (``--rate`` tokens per second,
one token per event, tokens with a leading space like a real tokenizer's) and notes when it
sends each token. The client (this process, same clock) notes when each token's text has
arrived, reassembled from the deltas. Two listeners of one Envoy: Envoy alone, and Envoy with
extproc authz and the processor (masking, audit). Requests alternate between them, one at a
time, so both see the same machine load.

- time to first content: request sent → the first token's text at the client;
- per-token delay: a token's arrival at the client minus its send by the upstream.

The processor holds back the word a stream ends with (it may be the start of an e-mail or a
secret) until the next piece shows where it ends: a token's text is therefore sent when the
next token arrives, one token interval later, unless it ends in a space or punctuation.

    python bench/first_byte.py [--rate 40] [--tokens 40] [--requests 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import loadavg, start_service, stop, wait_for_port
from sse_upstream import HEAD
from stack import Scenario, start_envoy
from workload import AUDIENCE, CLIENT_ADDRESS, GROUP, PATH, extproc_config

from extproc.demo.issuer import DevIssuer
from extproc.envoy_runner import free_port
from extproc.geo.writer import write_demo_database

SCENARIOS = (
    Scenario("S0sse", "Envoy alone", (), "sse"),
    Scenario("E3", "Envoy + extproc authz + processor", ("authz", "processor"), "sse"),
)
SENT: dict[str, list[float]] = {}  # request id → when the upstream sent each token


WORDS = (
    " Sure",
    ",",
    " here",
    " is",
    " a",
    " short",
    " answer",
    " about",
    " the",
    " weather",
    " in",
    " Berlin",
    " today",
    ":",
    " mild",
    " and",
    " cloudy",
    ",",
    " with",
    " light",
    " rain",
    " later",
    " this",
    " evening",
    ".",
)  # no digits: a run of number groups is held back on purpose (a card may be in progress)


def tokens(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(count)]


def event(token: str) -> bytes:
    choice = {"index": 0, "delta": {"content": token}, "finish_reason": None}
    data = json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})
    frame = f"data: {data}\n\n".encode()
    return f"{len(frame):x}\r\n".encode() + frame + b"\r\n"


async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float,
                count: int) -> None:  # fmt: skip
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            ident = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                         if line.lower().startswith(b"x-bench-id:"))  # fmt: skip
            await read_request_body(reader, head)
            writer.write(HEAD)
            times = SENT.setdefault(ident, [])
            for token in tokens(count):
                writer.write(event(token))
                await writer.drain()
                times.append(time.monotonic())
                await asyncio.sleep(1 / rate)
            done = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n")
            writer.write(b"6\r\ndata: [DONE]\n\n\r\n0\r\n\r\n".replace(b"6\r\n", b"e\r\n"))
            await writer.drain()
    writer.close()


async def read_request_body(reader: asyncio.StreamReader, head: bytes) -> None:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    if b"transfer-encoding: chunked" in head.lower():
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return


def start_upstream(port: int, rate: float, count: int) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: paced(r, w, rate, count), "127.0.0.1", port
        )
        async with server:
            await server.serve_forever()

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()


def one(port: int, token: str, ident: str, count: int) -> tuple[float, list[float]]:
    """(time to first content, each token's delay) of one streamed request."""
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    ends, total = [], 0
    for text in tokens(count):
        total += len(text)
        ends.append(total)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.monotonic()
    connection.request("POST", PATH, body=body, headers={
        "authorization": f"Bearer {token}", "x-forwarded-for": CLIENT_ADDRESS,
        "content-type": "application/json", "x-bench-id": ident})  # fmt: skip
    response = connection.getresponse()
    arrived: list[float] = []
    buffer, text = b"", ""
    while len(arrived) < count:
        chunk = response.read1(65536)
        if not chunk:
            break
        now = time.monotonic()
        buffer += chunk
        *events, buffer = buffer.split(b"\n\n")
        for raw in events:
            if raw.startswith(b"data: {"):
                for choice in json.loads(raw[6:]).get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
        while len(arrived) < count and len(text) >= ends[len(arrived)]:
            arrived.append(now)
    response.read()
    connection.close()
    sent = SENT.pop(ident)
    return arrived[0] - started, [a - s for a, s in zip(arrived, sent, strict=False)]


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(ordered) * 1000:.1f} ms (p90 {p90 * 1000:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--requests", type=int, default=15, help="per scenario")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    load_before = loadavg()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        root = Path(tmp)
        issuer = DevIssuer(root / "issuer", port=0)
        issuer.start()
        cleanup.callback(issuer.stop)
        config = root / "config.yaml"
        config.write_text(extproc_config(issuer.issuer_url, str(write_demo_database(
            root / "demo.mmdb")), str(root / "audit")))  # fmt: skip
        env = dict(os.environ, BENCH_MODEL_KEY="bench-upstream-secret",
                   BENCH_MASKING_KEY="m" * 40, BENCH_AUDIT_KEY="a" * 40)  # fmt: skip
        authz, authz_base = start_service("authz", config, args.workers, env, root / "a.log")
        cleanup.callback(stop, authz)
        processor, processor_base = start_service(
            "processor", config, args.workers, env, root / "p.log"
        )
        cleanup.callback(stop, processor)
        upstream = free_port()
        start_upstream(upstream, args.rate, args.tokens)
        wait_for_port(upstream)
        ports = {s.id: free_port() for s in SCENARIOS} | {"admin": free_port()}
        envoy = start_envoy(root, SCENARIOS, ports, issuer, 2, {
            "backend": [free_port()], "sse": [upstream],
            "extproc_authz": [authz_base + i for i in range(args.workers)],
            "extproc_processor": [processor_base + i for i in range(args.workers)],
        })  # fmt: skip
        cleanup.callback(envoy.stop)
        token = issuer.mint("bench", groups=(GROUP,), audience=AUDIENCE, ttl=3600)
        first: dict[str, list[float]] = {s.id: [] for s in SCENARIOS}
        delays: dict[str, list[float]] = {s.id: [] for s in SCENARIOS}
        for round_ in range(args.requests + 1):
            for scenario in SCENARIOS:
                ttfc, each = one(ports[scenario.id], token, f"{scenario.id}-{round_}", args.tokens)
                if round_:  # the first round warms connections and caches
                    first[scenario.id].append(ttfc)
                    delays[scenario.id].extend(each)
    report(args, first, delays, load_before, loadavg())
    return 0


def report(args: argparse.Namespace, first: dict[str, list[float]],
           delays: dict[str, list[float]], before: str, after: str) -> None:  # fmt: skip
    print(f"{args.rate:g} tokens/s, {args.tokens} tokens, {args.requests} requests per scenario,"
          f" {args.workers} workers; load average {before} (start), {after} (end)")  # fmt: skip
    print("| | time to first content | per-token delay |")
    print("|---|---|---|")
    for scenario in SCENARIOS:
        print(f"| {scenario.title} | {summary(first[scenario.id])} |"
              f" {summary(delays[scenario.id])} |")  # fmt: skip
    added_first = statistics.median(first["E3"]) - statistics.median(first["S0sse"])
    added_token = statistics.median(delays["E3"]) - statistics.median(delays["S0sse"])
    print(f"| added by extproc (medians) | {added_first * 1000:.1f} ms |"
          f" {added_token * 1000:.1f} ms |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
