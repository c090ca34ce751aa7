"""A demo model server that speaks the wire formats of the common inference APIs.

It answers by echoing the last user message (or the input, or the prompt) and records what it
received, so a user can see exactly what a model behind the gateway sees. Streamed replies come
a few characters per event, so values split across events and chunks. The path picks the
dialect (``extproc.demo.dialects``): ``/v1/chat/completions`` (OpenAI chat; a model named
``*tools*`` answers with a tool call, ``*plain*`` with bare ``data:`` lines),
``/v1/responses``, ``/v1/completions``, ``/v1/messages`` (Anthropic), ``/api/chat`` or
``/v1/api/chat`` (Ollama NDJSON, streamed unless ``"stream": false``). A model whose name has
``leaky`` ignores the prompt and answers with sample sensitive data, in its body and in an
``x-demo-record`` response header, for response masking.
``x-demo-*`` headers shape a stream (``extproc.demo.shapes``); ``x-demo-gzip: 1`` gzips a
whole reply and ``x-demo-gzip-bomb: 1`` answers with a small gzip body that inflates to 1 GiB.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from extproc.demo.dialects import frames, tool_arguments
from extproc.demo.http import start_server, stop_server
from extproc.demo.replies import prompt_of, usage, whole
from extproc.demo.shapes import ENDLESS_SECONDS, HOLD_SECONDS, StreamShape

MAX_BODY_BYTES = 8 * 1024 * 1024
MODELS = ("demo-echo", "demo-leaky", "demo-tools", "demo-leaky-tools", "demo-plain",
          "demo-leaky-plain")  # fmt: skip
ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/completions": "completions",
    "/v1/messages": "anthropic",
    "/api/chat": "ollama",
    "/v1/api/chat": "ollama",  # under the gateway's /REGION/v1/ routes
}
BOMB_BYTES = 1 << 30
LEAKY_HEADER = "x-demo-record"  # leaky models leak in a response header too
LEAKY_REPLY = (
    "Customer record: card 4111 1111 1111 1111, e-mail jane.doe@example.com, "
    "SSN 123-45-6789, phone +1 415 555 0100."
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


class DemoModel:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        record_path: Path | None = None,
        chunk_chars: int = 4,
        record_limit: int = 1000,
        required_key: str | None = None,
    ) -> None:
        self.host = host
        # With a key, only requests that carry it (as the gateway injects it) are served; the
        # rest get 401 and are counted in ``refused``, never recorded as seen.
        self.required_key = required_key
        self.refused = 0
        self.port = port
        self.record_path = record_path
        self.chunk_chars = chunk_chars
        self._record: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._lock = threading.Lock()
        self.resume = threading.Event()  # goes on with streams held by x-demo-hold-after-bytes
        self._bomb: bytes | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def accepts(self, authorization: str | None) -> bool:
        if self.required_key is None:
            return True
        expected = f"Bearer {self.required_key}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def start(self) -> None:
        self._server = start_server(self.host, self.port, _handler(self))
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        stop_server(self._server)
        self._server = None

    def gzip_bomb(self) -> bytes:
        """A gzip body of about 1 MB that inflates to 1 GiB of zeros (made once)."""
        if self._bomb is None:
            self._bomb = _gzip_bomb()
        return self._bomb

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._record)

    def clear(self) -> None:
        with self._lock:
            self._record.clear()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._record.append(request)
            if self.record_path is not None:
                try:
                    body: str = request.body.decode("utf-8")
                    encoding = "utf-8"
                except UnicodeDecodeError:
                    body = base64.b64encode(request.body).decode("ascii")
                    encoding = "base64"
                line = {
                    "time": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                    "body": body,
                    "body_encoding": encoding,
                }
                with self.record_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line) + "\n")


def _handler(model: DemoModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _send_json(
            self, status: int, body: Any, *, gzip_it: bool = False, leak: bool = False
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if leak:
                self.send_header(LEAKY_HEADER, LEAKY_REPLY)
            if gzip_it:
                data = gzip.compress(data)
                self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            error = {"message": message, "type": kind, "param": None, "code": None}
            self._send_json(status, {"error": error})

        def do_GET(self) -> None:
            model.record(RecordedRequest("GET", self.path, self._headers(), b""))
            if self.path == "/healthz":
                self._send_json(200, {"status": "ok"})
            elif self.path == "/v1/models":
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "extproc"}
                    for m in MODELS
                ]
                self._send_json(200, {"object": "list", "data": data})
            else:
                self._error(404, f"no route for GET {self.path}", "not_found")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            chunked = "chunked" in (self.headers.get("transfer-encoding") or "").lower()
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                self._error(413, "request body too large", "invalid_request_error")
                return
            body = self._read_chunked() if chunked else self.rfile.read(length)
            headers = self._headers()
            if not model.accepts(headers.get("authorization")):
                model.refused += 1
                self._error(401, "the model's API key is missing or wrong", "invalid_api_key")
                return
            model.record(RecordedRequest("POST", self.path, headers, body))
            dialect = ROUTES.get(self.path.split("?", 1)[0])
            if dialect is None:
                self._error(404, f"no route for POST {self.path}", "not_found")
                return
            try:
                request = json.loads(body)
                if not isinstance(request, dict):
                    raise TypeError
                text = prompt_of(dialect, request)
            except (ValueError, KeyError, TypeError):
                self._error(400, "the body is not a request of this API", "invalid_request_error")
                return
            name = str(request.get("model") or "demo-echo")
            text = LEAKY_REPLY if "leaky" in name else text
            if headers.get("x-demo-gzip-bomb") == "1":
                self._send_bomb()
                return
            if request.get("stream", dialect == "ollama"):
                options = request.get("stream_options") or {}
                counts = usage(text, text) if options.get("include_usage") else None
                self._stream(dialect, name, text, StreamShape.from_headers(headers), counts)
                return
            gzip_it = headers.get("x-demo-gzip") == "1" and "gzip" in headers.get(
                "accept-encoding", ""
            )
            reply = whole(dialect, name, text, request.get("messages"))
            self._send_json(200, reply, gzip_it=gzip_it, leak="leaky" in name)

        def _read_chunked(self) -> bytes:
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY_BYTES:
                    return bytes(out)

        def _stream(
            self,
            dialect: str,
            name: str,
            text: str,
            shape: StreamShape,
            usage: dict[str, int] | None,
        ) -> None:
            ndjson = dialect == "ollama"
            self.send_response(200)
            label = shape.label("application/x-ndjson" if ndjson else "text/event-stream")
            if label:
                self.send_header("content-type", label)
            if "leaky" in name:
                self.send_header(LEAKY_HEADER, LEAKY_REPLY)
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            if dialect == "chat" and "plain" in name:
                dialect = "plain"
            streamed = tool_arguments(text) if dialect == "chat" and "tools" in name else text
            parts = shape.parts(streamed, model.chunk_chars)
            sent, held = 0, False
            deadline = time.monotonic() + ENDLESS_SECONDS
            try:
                for frame in frames(
                    dialect, name, parts, text=streamed, eol=shape.eol, usage=usage
                ):
                    data = shape.frame(frame)
                    self._write_chunk(data)
                    sent += len(data)
                    if shape.hold_after_bytes and not held and sent >= shape.hold_after_bytes:
                        held = model.resume.wait(HOLD_SECONDS) or True
                    if shape.endless and time.monotonic() > deadline:
                        break
                if shape.no_delimiters:
                    self._write_chunk(shape.eol)  # the one event ends with the stream
                self._write_chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away: an endless stream ends

        def _send_bomb(self) -> None:
            data = model.gzip_bomb()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _gzip_bomb() -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [compressor.compress(block) for _ in range(BOMB_BYTES // len(block))]
    out.append(compressor.flush())
    return b"".join(out)
