"""In-process masking throughput (no gRPC, no Envoy): MB/s and µs per body for an 8 KB and a
256 KB JSON body full of e-mails and card numbers (the 8 KB one also with a cold span cache),
for an OpenAI-style chat request, and for two 8 KB text bodies without anything sensitive:
prose, and an order report dense with digits (order ids, dates, times, versions, amounts,
tracking numbers) that every detector has to look at.

    python bench/masking_bench.py
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extproc.masking.engine import Masker  # noqa: E402
from extproc.masking.profile import Profile  # noqa: E402
from extproc.masking.stream import SseMasker  # noqa: E402


def records_body(size: int) -> bytes:
    """A JSON list of customer records, about ``size`` bytes, a third of them sensitive."""
    records = []
    i = 0
    while len(json.dumps(records)) < size:
        records.append(
            {
                "id": i,
                "name": f"Customer {i}",
                "email": f"user{i}@example.com",
                "card": "4111 1111 1111 1111" if i % 3 == 0 else "no card on file",
                "note": "order 1234567812345678 shipped on 2024-01-15, version 1.2.3",
                "balance": i * 10.5,
            }
        )
        i += 1
    return json.dumps(records).encode()


def chat_body(size: int) -> bytes:
    text = "Summarize this: " + ("the quarterly numbers look fine. " * (size // 34))
    text += " Contact jane.doe@example.com, card 4111 1111 1111 1111."
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


PROSE = (
    "The team reviewed the draft on Tuesday and agreed that the second section needs a clearer "
    "summary. Revenue grew 12 percent over the year, driven by 3 new regions and about 40 "
    "partners. Please keep the tone neutral, avoid jargon, and cite the 2023 annual report where "
    "the figures come from. The appendix lists 7 open questions for the next meeting. "
)


def prose_body(size: int) -> bytes:
    """Plain text with a few small numbers and nothing to mask."""
    return (PROSE * (size // len(PROSE) + 1))[:size].encode()


def order_report_body(size: int) -> bytes:
    """Plain text dense with numbers that are not sensitive: every line differs (no cache)."""
    lines = []
    i = 0
    while sum(map(len, lines)) < size:
        lines.append(
            f"order ORD-2024-{i:06d} placed 2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} "
            f"{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}, client v{i % 9}.{i % 13}.{i % 7}, "
            f"qty {i % 5 + 1} at ${(i * 37) % 2000:,}.{i % 100:02d}, total EUR {i * 113 % 9000}.50, "
            f"build 20240115.{i}, ts {1700000000000 + i * 7919}, "
            f"tracking TRK{123456789012345678 + i * 1009}, ref #{48213 + i}, "
            f"uuid 123e4567-e89b-12d3-a456-{426614174000 + i:012d}\n"
        )
        i += 1
    return "".join(lines)[:size].encode()


def sse_body(size: int) -> bytes:
    text = "The answer is fine and the card 4111 1111 1111 1111 is masked. " * (size // 64)
    events = [
        b"data: "
        + json.dumps({"choices": [{"index": 0, "delta": {"content": text[i : i + 4]}}]}).encode()
        + b"\n\n"
        for i in range(0, len(text), 4)
    ]
    return b"".join(events) + b"data: [DONE]\n\n"


def main() -> None:
    masker = Masker(Profile("bench"), b"k" * 32)
    print("| body | bytes | µs per body | MB/s |")
    print("|---|---|---|---|")
    cases = [
        ("records JSON 8 KB", records_body(8 * 1024), lambda b: masker.mask_json(b, "response")),
        (
            # A fresh masker per body: every string is scanned, none comes from the span cache.
            "records JSON 8 KB, cold span cache",
            records_body(8 * 1024),
            lambda b: Masker(Profile("bench"), b"k" * 32).mask_json(b, "response"),
        ),
        (
            "records JSON 256 KB",
            records_body(256 * 1024),
            lambda b: masker.mask_json(b, "response"),
        ),
        ("chat request 8 KB", chat_body(8 * 1024), lambda b: masker.mask_json(b, "request")),
        ("chat request 256 KB", chat_body(256 * 1024), lambda b: masker.mask_json(b, "request")),
    ]

    def stream(body: bytes) -> bytes:
        sse = SseMasker(masker, "response")
        return sse.feed(body) + sse.finish()

    cases.append(
        (
            "text 8 KB, no PII",
            prose_body(8 * 1024),
            lambda b: masker.mask_bytes_as_text(b, "request"),
        )
    )
    cases.append(
        (
            "order report text 8 KB, digit-dense, no PII",
            order_report_body(8 * 1024),
            lambda b: masker.mask_bytes_as_text(b, "request"),
        )
    )
    cases.append(("SSE stream 8 KB of text, 4 chars per event", sse_body(8 * 1024), stream))
    for name, body, run in cases:
        number = max(3, 2_000_000 // len(body))
        seconds = min(timeit.repeat(lambda r=run, b=body: r(b), number=number, repeat=3)) / number
        print(f"| {name} | {len(body)} | {seconds * 1e6:.0f} | {len(body) / seconds / 1e6:.1f} |")


if __name__ == "__main__":
    main()
