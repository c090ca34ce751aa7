"""An open-loop, constant-rate HTTP/1.1 load generator (what wrk2 does; Debian has no wrk2, and
h2load's ``--rps`` times each request from when it was sent, which hides queueing).

Request ``i`` is due at ``start + i / rate`` whatever happened before it. A pool of keep-alive
connections takes the due requests in order; a request that finds every connection busy waits,
and its latency is measured from the time it was *due*, not from the time it was sent, so a slow
server is not hidden by a load generator that slows down with it (coordinated omission).
Requests still unanswered at the deadline (``duration + grace``) are counted as unfinished and
enter the percentiles with their latency up to the deadline, a lower bound (``censored``).

The event loop runs on select(2), whose timeouts have microsecond resolution (epoll's have one
millisecond, which would add up to a millisecond to every measured latency at these rates).

    python bench/paced.py --url http://127.0.0.1:10000/path --rate 500 --duration 10 \
        [--connections 16] [--body-file F] [-H 'name: value']...

Prints one JSON object: offered and achieved rate, p50/p99/max latency in ms, non-2xx, errors,
unfinished, and the p99 lag between a request's due time and its sending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import selectors
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

READ_SIZE = 65536


@dataclass
class Tally:
    due: list[float]
    latency: list[float | None]
    lag: list[float] = field(default_factory=list)
    non2xx: int = 0
    errors: int = 0
    next_index: int = 0


@dataclass(frozen=True)
class PacedResult:
    rate: float
    achieved_rps: float
    requests: int
    completed: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float
    non2xx: int
    errors: int
    unfinished: int
    censored: bool

    @property
    def sustained(self) -> bool:
        """The server kept up: every request answered, at no less than 95 % of the rate."""
        return self.unfinished == 0 and self.achieved_rps >= 0.95 * self.rate


def build_request(url: str, headers: list[str], body: bytes | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [
        f"{'POST' if body is not None else 'GET'} {parts.path or '/'} HTTP/1.1",
        f"host: {host}:{port}",
        *headers,
    ]
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response whole (sized or chunked); returns its status and whether the
    connection stays open. Parses what has arrived in one pass, not one await per chunk."""
    buffer = bytearray()
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        buffer += await _read(reader)
    head = bytes(buffer[:end]).decode("latin-1").lower()
    rest = buffer[end + 4 :]
    status = int(head.split(" ", 2)[1])
    keep_alive = "\r\nconnection: close" not in head
    if "\r\ntransfer-encoding: chunked" in head:
        await _read_chunked(reader, rest)
    else:
        length = _content_length(head)
        while len(rest) < length:
            rest += await _read(reader)
    return status, keep_alive


async def _read(reader: asyncio.StreamReader) -> bytes:
    data = await reader.read(READ_SIZE)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


def _content_length(head: str) -> int:
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


async def _read_chunked(reader: asyncio.StreamReader, buffer: bytearray) -> None:
    position = 0
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            buffer += await _read(reader)
            continue
        size = int(bytes(buffer[position:line_end]).split(b";")[0] or b"0", 16)
        if size == 0:  # the last chunk; no trailers are expected, only the closing CRLF
            while len(buffer) < line_end + 4:
                buffer += await _read(reader)
            return
        needed = line_end + 2 + size + 2
        while len(buffer) < needed:
            buffer += await _read(reader)
        position = needed


async def connection(
    tally: Tally, host: str, port: int, request: bytes, clock: float, deadline: float
) -> None:
    """One keep-alive connection: take the next due request, wait for its time, send it, read
    the answer; reconnect after a closed connection or an error."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while tally.next_index < len(tally.due):
        index = tally.next_index
        tally.next_index += 1
        due = tally.due[index]
        delay = due - (time.perf_counter() - clock)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            tally.lag.append(time.perf_counter() - clock - due)
            writer.write(request)
            status, keep_alive = await read_response(reader)
        except (OSError, ValueError, IndexError):
            tally.errors += 1
            tally.latency[index] = deadline - due  # failed: as late as a request can be
            writer = _close(writer)
            continue
        tally.latency[index] = time.perf_counter() - clock - due
        if not 200 <= status < 300:
            tally.non2xx += 1
        if not keep_alive:
            writer = _close(writer)
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


async def paced(
    url: str,
    rate: float,
    duration: float,
    connections: int,
    headers: list[str],
    body: bytes | None,
    grace: float,
) -> PacedResult:
    host, port, request = build_request(url, headers, body)
    count = int(rate * duration)
    tally = Tally(due=[i / rate for i in range(count)], latency=[None] * count)
    deadline = duration + grace
    clock = time.perf_counter()
    tasks = [
        asyncio.create_task(connection(tally, host, port, request, clock, deadline))
        for _ in range(connections)
    ]
    _done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - clock
    return summarize(tally, rate, elapsed, deadline)


def summarize(tally: Tally, rate: float, elapsed: float, deadline: float) -> PacedResult:
    unfinished = sum(1 for value in tally.latency if value is None)
    latencies = sorted(
        deadline - due if value is None else value
        for due, value in zip(tally.due, tally.latency, strict=True)
    )
    completed = len(latencies) - unfinished - tally.errors
    span = max(elapsed, tally.due[-1] if tally.due else 0.0) or 1.0
    return PacedResult(
        rate=rate,
        achieved_rps=round(completed / span, 1),
        requests=len(latencies),
        completed=completed,
        p50_ms=round(percentile(latencies, 50) * 1000, 3),
        p99_ms=round(percentile(latencies, 99) * 1000, 3),
        max_ms=round((latencies[-1] if latencies else 0.0) * 1000, 3),
        lag_p99_ms=round(percentile(sorted(tally.lag), 99) * 1000, 3),
        non2xx=tally.non2xx,
        errors=tally.errors,
        unfinished=unfinished,
        censored=unfinished > 0 or tally.errors > 0,
    )


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * pct / 100) - 1)]


def run(
    url: str,
    rate: float,
    duration: float,
    *,
    connections: int = 16,
    headers: list[str] | None = None,
    body: bytes | None = None,
    grace: float = 5.0,
) -> PacedResult:
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        return loop.run_until_complete(
            paced(url, rate, duration, connections, headers or [], body, grace)
        )
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of due requests")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--body-file", type=Path, help="POST this file's content")
    parser.add_argument("-H", "--header", action="append", default=[], help="'name: value'")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to wait after the last")
    args = parser.parse_args()
    body = args.body_file.read_bytes() if args.body_file else None
    result = run(
        args.url,
        args.rate,
        args.duration,
        connections=args.connections,
        headers=args.header,
        body=body,
        grace=args.grace,
    )
    print(json.dumps({**asdict(result), "sustained": result.sustained}))


if __name__ == "__main__":
    main()
