"""Audit writer throughput: events/s made durable (sealed, written, fsynced), the cost of
``submit`` on the request path, verify's records/s, and the write-ahead latency of
``submit_durable`` (group commit) at offered rates and at saturation.

    .venv/bin/python bench/audit_bench.py [--events 200000] [--directory DIR]
    .venv/bin/python bench/audit_bench.py --durable-only [--rates 200,500] [--concurrency 64]

The directory defaults to a temporary one beside the checkout (same disk as the demo's
``.extproc/audit``), so fsync costs what it costs there.

Write-ahead latency is from ``submit_durable`` to its Future resolving True (the moment the
processor may forward the request; the event loop's wake-up adds tens of µs). Offered rates
submit open-loop on a fixed schedule from an asyncio loop; saturation keeps ``--concurrency``
submissions in flight, each submitting again as soon as it is durable.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from extproc.audit.store import ChainFiles
from extproc.audit.verify import verify
from extproc.audit.writer import AuditWriter, WriterSettings

KEY = b"bench-audit-key-" + b"b" * 32


def processor_event(i: int) -> dict[str, object]:
    """The shape the processor writes for one chat completion (about 700 bytes sealed)."""
    return {
        "time": "2026-11-23T10:00:00.123456Z",
        "service": "processor",
        "request_id": f"9b1c3e0a-{i:012d}",
        "decision_id": f"{i:032x}",
        "outcome": "allowed",
        "rule": "eu-team-to-eu",
        "reason": "ml-eu may reach eu from the EU",
        "subject": "alice@example.org",
        "issuer": "https://issuer.example.org",
        "groups": ["ml-eu", "staff"],
        "source_address": "203.0.113.7",
        "source_country": "DE",
        "source_region": "eu",
        "declared_region": "eu",
        "target_region": "eu",
        "model": "demo-echo",
        "method": "POST",
        "path": "/v1/chat/completions",
        "upstream_status": 200,
        "request_bytes": 8192,
        "response_bytes": 2048,
        "findings": {"request.email": 2, "request.card": 1, "response.email": 1},
        "masking_profile": "default",
        "masking_mode": "enforce",
        "duration_ms": 12.345,
        "policy_revision": "4f1c2a9e0b7d",
    }


def throughput(directory: Path, events: int, batch: int) -> tuple[float, float]:
    """(events/s durable end to end, mean submit cost in µs)."""
    settings = WriterSettings(
        batch_max_events=batch, queue_max_events=max(10_000, batch * 4), block_timeout=60
    )
    prepared = [processor_event(i) for i in range(events)]
    writer = AuditWriter(directory, f"bench-{batch}", KEY, settings)
    submit = writer.submit
    submit_ns = 0
    start = time.perf_counter()
    for event in prepared:
        before = time.perf_counter_ns()
        submit(event)
        submit_ns += time.perf_counter_ns() - before
    unwritten = writer.close(timeout=600)
    elapsed = time.perf_counter() - start
    assert unwritten == 0
    assert writer.rejected == 0
    assert writer.written == events
    return events / elapsed, submit_ns / events / 1000


def submit_only(directory: Path, events: int) -> float:
    """Submit cost in µs while the queue never fills (no waiting for room), median of 5."""
    costs = []
    for run in range(5):
        writer = AuditWriter(
            directory, f"submit-{run}", KEY, WriterSettings(queue_max_events=events + 1)
        )
        prepared = [processor_event(i) for i in range(events)]
        start = time.perf_counter_ns()
        for event in prepared:
            writer.submit(event)
        costs.append((time.perf_counter_ns() - start) / events / 1000)
        writer.close(timeout=600)
    return statistics.median(costs)


def open_event(i: int) -> dict[str, object]:
    """The ids an ``open`` record carries before the request is forwarded (about 450 bytes)."""
    return {
        "service": "processor",
        "request_id": f"9b1c3e0a-{i:012d}",
        "decision_id": f"{i:032x}",
        "outcome": "allowed",
        "rule": "eu-team-to-eu",
        "subject": "alice@example.org",
        "route": "eu-chat",
        "model": "demo-echo",
        "method": "POST",
        "path": "/v1/chat/completions",
        "policy_revision": "4f1c2a9e0b7d",
    }


class CountingFiles(ChainFiles):
    """Chain files that count their appends: one write + fsync each."""

    appends = 0

    def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        super().append(events)
        self.appends += 1


def durable_run(
    directory: Path, name: str, window: float, rate: float | None, seconds: float, concurrency: int
) -> tuple[list[float], float, float]:
    """(latencies in ms, durable events/s, events per fsync) for one commit window, at an
    offered ``rate`` (events/s, open loop) or, when None, at saturation (closed loop)."""
    files = CountingFiles(directory, name, KEY)
    writer = AuditWriter.over(files, WriterSettings(commit_window=window))
    latencies: list[float] = []

    def timed(future: Future[bool], started: float) -> Future[bool]:
        def done(_: Future[bool]) -> None:
            latencies.append((time.perf_counter() - started) * 1000)

        future.add_done_callback(done)
        return future

    async def offered(rate: float) -> None:
        interval, count = 1 / rate, int(rate * seconds)
        start, pending = time.perf_counter(), []
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(timed(writer.submit_durable(open_event(i)), time.perf_counter()))
        assert all(await asyncio.gather(*(asyncio.wrap_future(f) for f in pending)))

    async def saturated() -> None:
        deadline = time.perf_counter() + seconds

        async def client(c: int) -> None:
            i = c
            while time.perf_counter() < deadline:
                future = timed(writer.submit_durable(open_event(i)), time.perf_counter())
                assert await asyncio.wrap_future(future)
                i += concurrency

        await asyncio.gather(*(client(c) for c in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(offered(rate) if rate else saturated())
    elapsed = time.perf_counter() - start
    appends = files.appends
    assert writer.close() == 0
    return latencies, len(latencies) / elapsed, len(latencies) / max(1, appends - 1)


def durable_latency(
    directory: Path, rates: list[float], seconds: float, concurrency: int, rounds: int
) -> None:
    """The three commit windows take turns, ``rounds`` times, and each one's latencies are
    pooled: a shared disk's slow spells then fall on all of them alike."""
    print("write-ahead (submit_durable) latency in ms, durable events/s, events per fsync")
    windows = (0.0, 0.001, 0.002)
    for rate in [*rates, None]:
        label = f"{rate:.0f}/s offered" if rate else f"saturation ({concurrency} in flight)"
        pooled: dict[float, list[float]] = {window: [] for window in windows}
        rates: dict[float, list[float]] = {window: [] for window in windows}
        grouping: dict[float, list[float]] = {window: [] for window in windows}
        for run in range(rounds):
            for window in windows:
                name = f"durable-{int(rate or 0)}-{int(window * 1e6)}-{run}"
                latencies, throughput, grouped = durable_run(
                    directory, name, window, rate, seconds, concurrency
                )
                pooled[window] += latencies
                rates[window].append(throughput)
                grouping[window].append(grouped)
        for window in windows:
            cuts = statistics.quantiles(pooled[window], n=100)
            print(
                f"  {label:26s} window {window * 1000:.0f} ms: p50 {cuts[49]:6.2f}  "
                f"p90 {cuts[89]:6.2f}  p99 {cuts[98]:6.2f}  "
                f"{statistics.median(rates[window]):8,.0f} events/s  "
                f"{statistics.median(grouping[window]):6.1f} events/fsync"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--directory", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=4.0, help="per write-ahead run")
    parser.add_argument("--rounds", type=int, default=3, help="write-ahead runs per setting")
    parser.add_argument("--concurrency", type=int, default=64, help="in flight at saturation")
    parser.add_argument("--rates", default="200,500", help="offered events/s, comma-separated")
    parser.add_argument("--durable-only", action="store_true")
    args = parser.parse_args()
    base = args.directory or Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="audit-bench-", dir=base) as scratch:
        directory = Path(scratch)
        rates = [float(rate) for rate in args.rates.split(",")]
        durable_latency(directory, rates, args.seconds, args.concurrency, args.rounds)
        if args.durable_only:
            return
        print(f"submit, queue never full: {submit_only(directory, 20_000):.2f} us/event")
        for batch in (64, 256, 1024):
            rate, cost = throughput(directory, args.events, batch)
            print(
                f"batch_max_events={batch:5d}: {rate:9,.0f} events/s durable, "
                f"submit {cost:.2f} us/event (including waits for room)"
            )
        start = time.perf_counter()
        report = verify([directory], KEY)
        elapsed = time.perf_counter() - start
        records = sum(c.records for c in report.chains)
        assert report.ok
        print(f"verify: {records / elapsed:,.0f} records/s ({records} records)")


if __name__ == "__main__":
    main()
