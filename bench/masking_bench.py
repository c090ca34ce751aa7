"""In-process masking throughput (no gRPC, no Envoy): µs per body and MB/s for an 8 KB and a
256 KB JSON body full of e-mails and card numbers (also with a cold span cache), an OpenAI-style
chat request (also one dense with numbers, every value new), and 8 KB texts without sensitive
values (plain, prose, and an order report dense with digits that every detector has to look
at); µs per SSE event; and the delay a streaming client sees before the first visible content
(how many tokens and characters the stream masker holds back).
Times are CPU time of this process (best of five), steadier than wall time on a shared box.

    python bench/masking_bench.py
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

CPU = time.process_time
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extproc.masking.engine import Masker  # noqa: E402
from extproc.masking.profile import Profile  # noqa: E402
from extproc.masking.stream import SseMasker  # noqa: E402

ANSWER = (
    "Hello! I can help with that. Your order shipped on 2024-01-15 and should arrive within "
    "three business days. The tracking page lists every stop, and you can change the delivery "
    "address until the parcel leaves the depot. Let me know if anything else comes up, and "
    "have a great day."
)


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


def dense_chat_request(size: int = 8 * 1024) -> bytes:
    """A chat request of about ``size`` bytes whose turns are dense with numbers that are not
    personal data (order ids, dates, times, versions, amounts, builds, timestamps), every turn
    different, and one turn with a card number and an e-mail address among them."""
    messages: list[dict[str, str]] = []
    i = 0
    while len(json.dumps({"model": "demo-echo", "messages": messages})) < size - 300:
        messages.append(
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"Order {20241115 + i} (id ORD-{i:06d}) placed "
                f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} at {i % 24:02d}:{i % 60:02d}, "
                f"client v{i % 9}.{i % 13}.{i % 7}, qty {i % 5 + 1}, total {1234 + i * 37}.50 EUR, "
                f"build 20240115.{i}, ts {1700000000000 + i * 7919}.",
            }
        )
        i += 1
    secret = "My card is 4111 1111 1111 1111 and my mail jane.doe@example.com, thanks."
    messages.insert(len(messages) // 2, {"role": "user", "content": secret})
    return json.dumps({"model": "demo-echo", "messages": messages}).encode()


def dense_variants(count: int, seed: int = 0, size: int = 8 * 1024) -> list[bytes]:
    """``count`` copies of ``dense_chat_request`` with every digit drawn anew (seeded): the
    same shape, but every number is one no cache of the masker has seen."""
    pieces = re.split(rb"\d", dense_chat_request(size))
    digits = [str(digit).encode() for digit in range(10)]
    rng = random.Random(seed)
    variants = []
    for _ in range(count):
        drawn = rng.choices(digits, k=len(pieces) - 1)
        woven = itertools.chain(*zip(pieces[:-1], drawn, strict=True), pieces[-1:])
        variants.append(b"".join(woven))
    return variants


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


def plain_text(size: int) -> bytes:
    """Prose with dates, versions and order numbers but nothing sensitive."""
    line = "Release 2.4.1 shipped on 2024-03-07; order 1234567812345678 is closed. All good.\n"
    return (line * (size // len(line) + 1)).encode()[:size]


def chat_event(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def sse_body(size: int) -> bytes:
    text = "The answer is fine and the card 4111 1111 1111 1111 is masked. " * (size // 64)
    events = [chat_event(text[i : i + 4]) for i in range(0, len(text), 4)]
    return b"".join(events) + b"data: [DONE]\n\n"


def tokens(text: str) -> list[str]:
    """Roughly how a chat model's tokenizer splits prose: words with their leading space."""
    return re.findall(r" ?\w+| ?[^\w\s]+|\s+", text)


def body_cases(masker: Masker) -> list[tuple[str, bytes, Callable[[bytes], object]]]:
    mask_body = getattr(masker, "mask_body", None)

    def as_json(direction: str) -> Callable[[bytes], object]:
        if mask_body is not None:
            return lambda b: mask_body(b, "application/json", direction)
        return lambda b: masker.mask_json(b, direction)

    def as_text(b: bytes) -> object:
        if mask_body is not None:
            return mask_body(b, "text/plain", "response")
        return masker.mask_bytes_as_text(b, "response")

    as_request = as_json("request")
    # Enough variants for every call of the timing: none repeats, as in a busy service where
    # order ids and timestamps never do. The masker first sees others, as a running service
    # has (what is compiled or loaded on first use is, the values are not).
    for variant in dense_variants(300, seed=1):
        as_request(variant)
    next_variant = itertools.cycle(dense_variants(1_300)).__next__

    def every_value_new(_: bytes) -> object:
        return as_request(next_variant())

    return [
        ("records JSON 8 KB", records_body(8 * 1024), as_json("response")),
        ("records JSON 256 KB", records_body(256 * 1024), as_json("response")),
        ("chat request 8 KB", chat_body(8 * 1024), as_json("request")),
        ("chat request 256 KB", chat_body(256 * 1024), as_json("request")),
        (
            "chat request 8 KB, dense with numbers, a card, an e-mail",
            dense_chat_request(),
            as_json("request"),
        ),
        (
            "chat request 8 KB, dense with numbers, every value new (warm masker)",
            dense_chat_request(),
            every_value_new,
        ),
        (
            "chat request 8 KB, dense with numbers, cold caches",
            dense_chat_request(),
            lambda b: Masker(Profile("bench"), b"k" * 32).mask_body(
                b, "application/json", "request"
            ),
        ),
        ("text 8 KB, nothing sensitive", plain_text(8 * 1024), as_text),
        ("prose 8 KB, nothing sensitive", prose_body(8 * 1024), as_text),
        ("order report 8 KB, digit-dense, nothing sensitive", order_report_body(8 * 1024), as_text),
        (
            # A fresh masker per body: every string is scanned, none comes from the span cache.
            "records JSON 8 KB, cold span cache",
            records_body(8 * 1024),
            lambda b: Masker(Profile("bench"), b"k" * 32).mask_body(
                b, "application/json", "response"
            ),
        ),
        ("JSON nested 100,000 deep, a card inside", deep_body(100_000), as_json("request")),
    ]


def deep_body(depth: int) -> bytes:
    return b"[" * depth + b'"4111 1111 1111 1111"' + b"]" * depth


def bench_bodies(masker: Masker) -> None:
    print("| body | bytes | µs per body | MB/s |")
    print("|---|---|---|---|")
    for name, body, run in body_cases(masker):
        number = max(3, 2_000_000 // len(body))
        try:
            seconds = min(
                timeit.repeat(lambda r=run, b=body: r(b), number=number, repeat=5, timer=CPU)
            )
        except RecursionError:
            print(f"| {name} | {len(body)} | RecursionError | - |")
            continue
        seconds /= number
        print(f"| {name} | {len(body)} | {seconds * 1e6:.0f} | {len(body) / seconds / 1e6:.1f} |")


def bench_sse(masker: Masker) -> None:
    body = sse_body(8 * 1024)
    events = body.count(b"\n\n")

    def stream() -> bytes:
        sse = SseMasker(masker, "response")
        return sse.feed(body) + sse.finish()

    seconds = min(timeit.repeat(stream, number=3, repeat=5, timer=CPU)) / 3
    print(
        f"| SSE 8 KB of text, 4 chars per event, one network chunk | {events} events "
        f"| {seconds / events * 1e6:.1f} µs per event |"
    )


def emitted_content(out: bytes) -> str:
    text = ""
    for event in out.split(b"\n\n"):
        data = event.removeprefix(b"data: ")
        if not data.startswith(b"{"):
            continue
        for choice in json.loads(data).get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return text


def bench_first_content(masker: Masker) -> None:
    """Feed a chat stream one token per event and per network chunk, as a model sends it."""
    parts = tokens(ANSWER)
    runs = []
    for _ in range(20):
        sse = SseMasker(masker, "response")
        arrived = shown = 0
        first = None
        held: list[int] = []
        started = CPU()
        for number, token in enumerate(parts, 1):
            arrived += len(token)
            shown += len(emitted_content(sse.feed(chat_event(token))))
            held.append(arrived - shown)
            if first is None and shown:
                first = number
        elapsed = CPU() - started
        runs.append((elapsed, first, held))
    elapsed, first, held = min(runs, key=lambda run: run[0])
    print(
        f"| chat stream, one token per event ({len(parts)} tokens) "
        f"| first content after token {first} "
        f"| held chars mean {sum(held) / len(held):.1f}, max {max(held)} "
        f"| {elapsed / len(parts) * 1e6:.1f} µs per event |"
    )


def main() -> None:
    masker = Masker(Profile("bench"), b"k" * 32)
    bench_bodies(masker)
    print()
    bench_sse(masker)
    bench_first_content(masker)


if __name__ == "__main__":
    main()
