"""A whole gateway for end-to-end tests: the real Envoy, `extproc serve` worker processes, the
development OIDC issuer and the demo model, all on free localhost ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.demo.issuer import DevIssuer
from extproc.demo.up import shipped_envoy_config, wait_for_grpc_health
from extproc.demo.upstream import DemoModel
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


class Gateway:
    def __init__(self, root: Path, *, config_text: str, workers: int = 2) -> None:
        self.root = root
        self.workers = workers
        self.config_path = root / "config.yaml"
        self.issuer = DevIssuer(root / "issuer", port=0)
        # The model serves only what carries the gateway's key, like a real one behind it.
        self.model = DemoModel(port=0, required_key=MODEL_KEY)
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
            shipped_envoy_config("demo.yaml"),
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

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        self.stop_authz()
        self.stop_processor()
        _stop(self.approvals)
        self.model.stop()
        self.issuer.stop()

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


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
