"""A demo model server with the OpenAI chat completions wire format.

It answers by echoing the last user message (streamed as SSE when ``"stream": true``, a few
characters per event so values split across events and chunks) and records what it received, so
a user can see exactly what a model behind the gateway sees. The model ``demo-leaky`` ignores
the prompt and answers with sample sensitive data, for response masking.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from extproc.demo.http import start_server, stop_server

MAX_BODY_BYTES = 8 * 1024 * 1024
MODELS = ("demo-echo", "demo-leaky")
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


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return ""


def _handler(model: DemoModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _send_json(self, status: int, body: Any, *, gzip_it: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
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
            if self.path.split("?", 1)[0] != "/v1/chat/completions":
                self._error(404, f"no route for POST {self.path}", "not_found")
                return
            try:
                request = json.loads(body)
                messages = request["messages"]
                if not isinstance(messages, list):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                self._error(
                    400, "the body must be JSON with a 'messages' list", "invalid_request_error"
                )
                return
            name = str(request.get("model") or "demo-echo")
            text = LEAKY_REPLY if name == "demo-leaky" else _last_user_text(messages)
            if request.get("stream"):
                include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                self._stream(name, text, include_usage)
                return
            gzip_it = headers.get("x-demo-gzip") == "1" and "gzip" in headers.get(
                "accept-encoding", ""
            )
            self._send_json(200, _completion(name, text, messages), gzip_it=gzip_it)

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

        def _stream(self, name: str, text: str, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            ident = f"chatcmpl-{secrets.token_hex(12)}"
            created = int(time.time())

            def event(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
                return {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": name,
                    "system_fingerprint": "fp_extproc_demo",
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                    ],
                }

            self._chunk(event({"role": "assistant", "content": ""}, None))
            step = max(1, model.chunk_chars)
            for start in range(0, len(text), step):
                self._chunk(event({"content": text[start : start + step]}, None))
            self._chunk(event({}, "stop"))
            if include_usage:
                usage = event({}, None)
                usage["choices"] = []
                usage["usage"] = _usage(text, text)
                self._chunk(usage)
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")

        def _chunk(self, payload: dict[str, Any]) -> None:
            self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _usage(prompt: str, completion: str) -> dict[str, int]:
    prompt_tokens = max(1, len(prompt.split()))
    completion_tokens = max(1, len(completion.split()))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion(name: str, text: str, messages: list[Any]) -> dict[str, Any]:
    prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_extproc_demo",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(prompt, text),
    }
