"""A small streaming upstream: every request is answered with the same server-sent event stream
(``bench/workload.py``'s chat.completion.chunk events), chunked, one write per event, on
HTTP/1.1 keep-alive connections. The events are rendered once, so the upstream costs little
next to what it measures.

    python bench/sse_upstream.py --port 18081 [--events 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import SSE_EVENTS, sse_events

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def chunked(events: list[bytes]) -> list[bytes]:
    return [f"{len(event):x}\r\n".encode() + event + b"\r\n" for event in events] + [b"0\r\n\r\n"]


async def read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request (headers and its body, sized or chunked); False at the connection's end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return True
    for line in headers.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    return True


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def handler(chunks: list[bytes]) -> Handler:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await read_request(reader):
                writer.write(HEAD)
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return serve


async def serve_forever(port: int, events: int) -> None:
    server = await asyncio.start_server(
        handler(chunked(sse_events(events))), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=SSE_EVENTS)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_forever(args.port, args.events))
    else:
        uvloop.run(serve_forever(args.port, args.events))


if __name__ == "__main__":
    main()
