"""Audit writer throughput: events/s made durable (sealed, written, fsynced), the cost of
``submit`` on the request path, and verify's records/s.

    .venv/bin/python bench/audit_bench.py [--events 200000] [--directory DIR]

The directory defaults to a temporary one beside the checkout (same disk as the demo's
``.extproc/audit``), so fsync costs what it costs there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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
        "decision": "allow",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--directory", type=Path, default=None)
    args = parser.parse_args()
    base = args.directory or Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="audit-bench-", dir=base) as scratch:
        directory = Path(scratch)
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
