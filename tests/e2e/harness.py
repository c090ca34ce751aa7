"""A whole gateway for end-to-end tests: the real Envoy, `extproc serve` worker processes, the
development OIDC issuer and the demo model, all on free localhost ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from extproc.demo.http import start_server
from extproc.demo.issuer import DevIssuer
from extproc.demo.replies import whole
from extproc.demo.up import listening_pid, shipped_envoy_config, wait_for_grpc_health
from extproc.demo.upstream import DemoModel, RecordedRequest, _handler
from extproc.envoy_runner import EnvoyProcess, free_port, free_port_range, render_config

MODEL_KEY = "gateway-only-model-key-7f3a"
MODEL_KEY_ENV = "EXTPROC_E2E_MODEL_KEY"
KEYS = {
    "EXTPROC_E2E_MASKING_KEY": "masking-key-for-end-to-end-tests-0123456789",
    "EXTPROC_E2E_AUDIT_KEY": "audit-key-for-end-to-end-tests-0123456789ab",
}
AUDIENCE = "extproc-e2e"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


ANSWER_BYTES_HEADER = "x-test-answer-bytes"
ANSWER_CARD = "4111 1111 1111 1111"


class GatewayModel(DemoModel):
    """The demo model, plus answers of a chosen size: a request with the header
    ``x-test-answer-bytes: N`` gets a completion whose content is about N bytes of text with a
    card number at its start and at its end, so a truncated or unmasked answer shows."""

    def start(self) -> None:
        model = self

        class Handler(_handler(self)):  # type: ignore[misc]
            def do_POST(self) -> None:
                size = self.headers.get(ANSWER_BYTES_HEADER)
                if size is None:
                    super().do_POST()
                    return
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                model.record(RecordedRequest("POST", self.path, self._headers(), body))
                filler = "x" * max(0, int(size) - 2 * len(ANSWER_CARD) - 2)
                text = f"{ANSWER_CARD} {filler} {ANSWER_CARD}"
                try:
                    self._send_json(200, whole("chat", "demo-echo", text))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # Envoy refused the answer and hung up

        self._server = start_server(self.host, self.port, Handler)
        self.port = int(self._server.server_address[1])


class Gateway:
    def __init__(
        self,
        root: Path,
        *,
        config_text: str,
        workers: int = 2,
        envoy_template: Path | None = None,
    ) -> None:
        self.root = root
        self.workers = workers
        self.envoy_template = envoy_template or shipped_envoy_config("demo.yaml")
        self.config_path = root / "config.yaml"
        self.issuer = DevIssuer(root / "issuer", port=0)
        # The model serves only what carries the gateway's key, like a real one behind it.
        self.model = GatewayModel(port=0, required_key=MODEL_KEY)
        self.authz_port = free_port_range(workers)
        self.processor_port = free_port_range(workers)
        self.listener_port = free_port()
        self.admin_port = free_port()
        self._config_text = config_text
        self.authz: subprocess.Popen[bytes] | None = None
        self.processor: subprocess.Popen[bytes] | None = None
        self.approvals: subprocess.Popen[bytes] | None = None
        self.approvals_port = 0
        self.envoy: EnvoyProcess | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.issuer.start()
        self.model.start()
        self.write_config(self._config_text)
        self.start_authz()
        self.start_processor()
        envoy_config = render_config(
            self.envoy_template,
            self.root / "envoy.yaml",
            listener_ports={"inference": self.listener_port},
            admin_port=self.admin_port,
            clusters={
                "extproc_authz": [("127.0.0.1", self.authz_port + i) for i in range(self.workers)],
                "extproc_processor": [
                    ("127.0.0.1", self.processor_port + i) for i in range(self.workers)
                ],
                "model_eu": [("127.0.0.1", self.model.port)],
                "model_us": [("127.0.0.1", self.model.port)],
            },
        )
        self.envoy = EnvoyProcess(
            envoy_config, admin_port=self.admin_port, log_path=self.root / "envoy.log"
        )
        self.envoy.start()

    def write_config(self, text: str) -> None:
        rendered = text.replace("{issuer_url}", self.issuer.issuer_url)
        self.config_path.write_text(rendered, encoding="utf-8")

    def start_authz(self) -> None:
        self.authz = self._start_service("authz", self.authz_port)

    def start_processor(self) -> None:
        self.processor = self._start_service("processor", self.processor_port)

    def start_approvals(self) -> int:
        """The approvals service (one worker) on the gateway's config and store; its port."""
        self.approvals_port = free_port()
        self.approvals = self._start_service("approvals", self.approvals_port, workers=1)
        return self.approvals_port

    def _start_service(
        self, service: str, port: int, workers: int | None = None
    ) -> subprocess.Popen[bytes]:
        workers = self.workers if workers is None else workers
        env = dict(os.environ, **{MODEL_KEY_ENV: MODEL_KEY}, **KEYS)
        log = (self.root / f"{service}.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "extproc", "serve", service,
                "--config", str(self.config_path),
                "--port", str(port), "--workers", str(workers),
                "--reload-interval", "0.2", "--log-level", "debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        try:
            for i in range(workers):
                wait_for_grpc_health(port + i, process=process)
        except Exception as exc:
            text = (self.root / f"{service}.log").read_text(errors="replace")
            raise RuntimeError(f"{service} did not start:\n{text[-3000:]}") from exc
        return process

    def stop_authz(self) -> None:
        _stop(self.authz)
        self.authz = None

    def stop_processor(self) -> None:
        _stop(self.processor)
        self.processor = None

    # -- faults -----------------------------------------------------------------------------------
    def service_port(self, service: str, index: int = 0) -> int:
        return (self.authz_port if service == "authz" else self.processor_port) + index

    def worker_pid(self, service: str, index: int = 0) -> int | None:
        """The pid of the worker process listening on the service's ``index``-th port."""
        return listening_pid(self.service_port(service, index))

    def kill_worker(self, service: str, index: int = 0) -> int:
        """kill -9 one worker process of a service (its supervisor stays); returns its pid."""
        pid = self.worker_pid(service, index)
        assert pid is not None, f"no {service} worker listens on port {index}"
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_worker_serving(self, service: str, index: int, not_pid: int, timeout: float) -> int:
        """Wait until a worker other than ``not_pid`` serves the port; returns its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.worker_pid(service, index)
            if pid is not None and pid != not_pid:
                wait_for_grpc_health(
                    self.service_port(service, index), timeout=deadline - time.monotonic()
                )
                return pid
            time.sleep(0.1)
        raise AssertionError(f"the {service} worker {index} did not come back in {timeout:.0f}s")

    def upstream_host(self, service: str, index: int = 0) -> dict[str, str]:
        """Envoy's view of one worker (``/clusters``): health_flags, rq_total, cx_active..."""
        assert self.envoy is not None
        cluster = "extproc_authz" if service == "authz" else "extproc_processor"
        prefix = f"{cluster}::127.0.0.1:{self.service_port(service, index)}::"
        return {
            line[len(prefix) :].split("::", 1)[0]: line.rsplit("::", 1)[1]
            for line in self.envoy.admin("/clusters").splitlines()
            if line.startswith(prefix)
        }

    def restart_envoy(self, down_for: float = 0.0) -> None:
        """Stop Envoy (SIGTERM), leave it down ``down_for`` seconds, start it again on the same
        ports and config."""
        assert self.envoy is not None
        self.envoy.stop()
        time.sleep(down_for)
        self.envoy.start()

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        self.stop_authz()
        self.stop_processor()
        _stop(self.approvals)
        self.model.stop()
        self.issuer.stop()

    def envoy_stats(self, pattern: str) -> dict[str, int]:
        """Envoy's counters and gauges whose names match the regex ``pattern``."""
        assert self.envoy is not None
        text = self.envoy.admin(f"/stats?filter={urllib.parse.quote(pattern)}")
        stats = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                stats[name] = int(value)
        return stats

    def authz_log(self) -> str:
        return (self.root / "authz.log").read_text(encoding="utf-8", errors="replace")

    # -- traffic --------------------------------------------------------------------------------
    def token(self, sub: str = "alice", groups: tuple[str, ...] = ("ml-eu",), **claims: Any) -> str:
        return self.issuer.mint(sub, groups=groups, audience=AUDIENCE, extra_claims=claims)

    def request(
        self,
        path: str = "/eu/v1/chat/completions",
        *,
        token: str | None = None,
        source: str | None = "192.0.2.10",
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
    ) -> Reply:
        sent = {"content-type": "application/json"}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        if source is not None:
            sent["x-forwarded-for"] = source
        sent.update(headers or {})
        payload = json.dumps(
            body or {"model": "demo-echo", "messages": [{"role": "user", "content": "Hello"}]}
        ).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.listener_port, timeout=30)
        try:
            connection.request(
                method, path, body=payload if method != "GET" else None, headers=sent
            )
            response = connection.getresponse()
            return Reply(
                status=response.status,
                headers={k.lower(): v for k, v in response.getheaders()},
                body=response.read(),
            )
        finally:
            connection.close()

    def wait_until(self, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.2)
        return last


def replace_file(path: Path, data: bytes) -> None:
    """Replace a file the way deployment tools do: write beside it, then rename over it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


# -- raw uploads --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    """What a client that sends a body and reads the answer at the same time saw.

    ``status`` is None when no answer came within the timeout; ``sent`` counts the body bytes
    the client managed to write before the answer (or the timeout)."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    sent: int

    def json(self) -> Any:
        return json.loads(self.body)


def json_body(size: int, model: str = "demo-echo") -> Iterator[bytes]:
    """A chat request of exactly ``size`` bytes, yielded in 64 KiB pieces (never held whole)."""
    head = b'{"model": "' + model.encode() + b'", "messages": [{"role": "user", "content": "'
    tail = b'"}]}'
    filler = size - len(head) - len(tail)
    yield head
    piece = b"lorem ipsum " * (65536 // 12)
    while filler > 0:
        chunk = piece[:filler]
        filler -= len(chunk)
        yield chunk
    yield tail


def _read_answer(reader: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, headers and body (content-length, chunked or to EOF)."""
    status_line = reader.readline()
    if not status_line:
        raise ConnectionError("closed before an answer")
    status = int(status_line.split()[1])
    headers = {k.lower(): v for k, v in http.client.parse_headers(reader).items()}
    if status < 200:
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, reader.read(int(headers["content-length"]))
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while size := int(reader.readline().split(b";")[0].strip() or b"0", 16):
            body += reader.read(size)
            reader.readline()
        reader.readline()
        return status, headers, bytes(body)
    return status, headers, reader.read()


def upload(
    port: int,
    body: bytes | int,
    *,
    path: str = "/eu/v1/chat/completions",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    rate: float | None = None,
    expect_continue: bool = False,
    timeout: float = 30.0,
) -> Upload:
    """POST ``body`` (or a generated JSON chat request of that many bytes) over HTTP/1.1 while
    reading the answer, the way a client that streams its upload does: with a content-length,
    or ``chunked``; at most ``rate`` bytes a second (a slow sender); with ``expect:
    100-continue`` (the body then waits for a 100, or for the answer). Stops sending as soon as
    an answer arrives; gives up after ``timeout`` seconds (``status`` None)."""
    size = body if isinstance(body, int) else len(body)
    pieces = json_body(body) if isinstance(body, int) else iter([body])
    head = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("transfer-encoding: chunked" if chunked else f"content-length: {size}")
    if expect_continue:
        head.append("expect: 100-continue")
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    started = time.monotonic()
    answered = threading.Event()
    may_send = threading.Event()
    if not expect_continue:
        may_send.set()
    sent = 0

    def send() -> None:
        nonlocal sent
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if not may_send.wait(timeout):
                return
            for piece in pieces:
                for start in range(0, len(piece), 16384):
                    if answered.is_set() or time.monotonic() - started > timeout:
                        return
                    part = piece[start : start + 16384]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    sent += len(part)
                    if rate:
                        time.sleep(len(part) / rate)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    status: int | None = None
    reply_headers: dict[str, str] = {}
    reply_body = b""
    try:
        reader = sock.makefile("rb")
        while status is None:
            code, reply_headers, reply_body = _read_answer(reader)
            if code == 100:
                may_send.set()
                continue
            status = code
    except (OSError, ValueError, IndexError, http.client.HTTPException):
        pass
    finally:
        seconds = time.monotonic() - started
        answered.set()
        may_send.set()
        sock.close()
        sender.join(timeout=5)
    return Upload(status, reply_headers, reply_body, seconds, sent)
