"""``extproc up``: the real Envoy, the extproc services, a demo model and a development OIDC
issuer on embedded defaults, with state (keys, GeoIP database, config, logs) in one directory."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.demo.issuer import DevIssuer
from extproc.demo.state import DEFAULT_ISSUER_PORT, demo_model_key, init_demo_state
from extproc.demo.upstream import DemoModel
from extproc.envoy_runner import EnvoyProcess, render_config
from extproc.errors import ExtprocError

MODEL_KEY_ENV = "EXTPROC_DEMO_MODEL_KEY"


@dataclass(frozen=True, slots=True)
class DemoPorts:
    listener: int = 10000
    admin: int = 19901
    model: int = 18080
    authz: int = 50051
    processor: int = 50061
    approvals: int = 50071
    issuer: int = DEFAULT_ISSUER_PORT


def shipped_envoy_config(name: str) -> Path:
    """An Envoy config shipped with the project (``envoy/`` in a checkout, or the wheel copy)."""
    packaged = Path(str(resources.files("extproc"))) / "_envoy_configs" / name
    if packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "envoy" / name
    if checkout.is_file():
        return checkout
    raise ExtprocError(f"the shipped Envoy config {name} was not found")


def wait_for_grpc_health(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ExtprocError(f"the service exited with code {process.returncode} at start")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last_error = f"status {reply.status}"
            except grpc.RpcError as exc:
                last_error = str(exc.code())
        time.sleep(0.2)
    raise ExtprocError(f"the service on port {port} did not become healthy ({last_error})")


def start_service(
    service: str,
    config: Path,
    port: int,
    workers: int,
    log_path: Path,
    env: dict[str, str],
    metrics_port: int | None = None,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "extproc", "serve", service,
        "--config", str(config), "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    log = log_path.open("ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_demo(state_dir: Path, ports: DemoPorts, *, workers: int) -> int:
    state_dir = state_dir.resolve()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    issuer = DevIssuer(state_dir / "issuer", port=ports.issuer)
    issuer.start()
    config = init_demo_state(state_dir, issuer.issuer_url)
    # The model serves only requests carrying the key the gateway injects: a request that got
    # past Envoy without extproc's allow is refused there too.
    model = DemoModel(
        port=ports.model,
        record_path=state_dir / "model-requests.jsonl",
        required_key=demo_model_key(state_dir),
    )
    model.start()
    # Configs written by older versions read the model's key from this variable.
    env = dict(os.environ, **{MODEL_KEY_ENV: demo_model_key(state_dir)})
    authz = start_service(
        "authz", config, ports.authz, workers, logs / "authz.log", env, ports.authz + 100
    )
    processor = start_service(
        "processor", config, ports.processor, workers, logs / "processor.log", env,
        ports.processor + 100,
    )  # fmt: skip
    approvals = start_service(
        "approvals", config, ports.approvals, 1, logs / "approvals.log", env, ports.approvals + 100
    )
    envoy: EnvoyProcess | None = None
    try:
        for i in range(workers):
            wait_for_grpc_health(ports.authz + i, process=authz)
            wait_for_grpc_health(ports.processor + i, process=processor)
        wait_for_grpc_health(ports.approvals, process=approvals)
        envoy_config = render_config(
            shipped_envoy_config("demo.yaml"),
            state_dir / "envoy.yaml",
            listener_ports={"inference": ports.listener},
            admin_port=ports.admin,
            clusters={
                "extproc_authz": [("127.0.0.1", ports.authz + i) for i in range(workers)],
                "extproc_processor": [("127.0.0.1", ports.processor + i) for i in range(workers)],
                "model_eu": [("127.0.0.1", model.port)],
                "model_us": [("127.0.0.1", model.port)],
            },
        )
        envoy = EnvoyProcess(envoy_config, admin_port=ports.admin, log_path=logs / "envoy.log")
        envoy.start()
        _print_welcome(state_dir, ports, issuer)
        _wait_for_interrupt(authz, processor, approvals)
    finally:
        if envoy is not None:
            envoy.stop()
        _stop(authz)
        _stop(processor)
        _stop(approvals)
        model.stop()
        issuer.stop()
    return 0


def _wait_for_interrupt(*services: subprocess.Popen[bytes]) -> None:
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop:
        if any(service.poll() is not None for service in services):
            print("extproc: a service exited; stopping (see the logs)", file=sys.stderr)
            return
        time.sleep(0.3)
    print("\nstopping...", file=sys.stderr)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _print_welcome(state_dir: Path, ports: DemoPorts, issuer: DevIssuer) -> None:
    alice = issuer.mint("alice", groups=("ml-eu",))
    url = f"http://127.0.0.1:{ports.listener}"
    body = '{"model": "demo-echo", "messages": [{"role": "user", "content": "Hello"}]}'
    masked_body = (
        '{"model": "demo-echo", "messages": [{"role": "user", "content": '
        '"My card is 4111 1111 1111 1111, mail jane.doe@example.com, SSN 123-45-6789"}]}'
    )
    here = shlex.quote(str(state_dir))
    print(
        f"""
extproc demo is up: Envoy on {url} (admin 127.0.0.1:{ports.admin})
state, config and logs: {state_dir}   (edit config.yaml: the services reload it)

A token for alice (group ml-eu):
  TOKEN=$(extproc token --state-dir {here} --sub alice --groups ml-eu)
  TOKEN={alice}

Allowed: alice from Germany (192.0.2.10) to the eu model:
  curl -s {url}/eu/v1/chat/completions -H "authorization: Bearer $TOKEN" \\
    -H 'x-forwarded-for: 192.0.2.10' -H 'content-type: application/json' -d '{body}'

Denied 403: the same from the US (198.51.100.7), or to the us model:
  curl -s {url}/eu/v1/chat/completions -H "authorization: Bearer $TOKEN" \\
    -H 'x-forwarded-for: 198.51.100.7' -H 'content-type: application/json' -d '{body}'
  curl -s {url}/us/v1/chat/completions -H "authorization: Bearer $TOKEN" \\
    -H 'x-forwarded-for: 192.0.2.10' -H 'content-type: application/json' -d '{body}'

Denied 401: no token, or a forged one:
  curl -s {url}/eu/v1/chat/completions -H 'x-forwarded-for: 192.0.2.10' -d '{body}'

Why? extproc explain --config {here}/config.yaml --token "$TOKEN" \\
       --source-ip 198.51.100.7 --path /eu/v1/chat/completions --ext target_region=eu

Masked both ways: the model never sees the card, e-mail or SSN; add "stream": true for SSE:
  curl -s {url}/eu/v1/chat/completions -H "authorization: Bearer $TOKEN" \\
    -H 'x-forwarded-for: 192.0.2.10' -H 'content-type: application/json' \\
    -d '{masked_body}'
  (what the model saw: {here}/model-requests.jsonl; the model demo-leaky answers with
   sensitive data, which the client gets masked)

Blocked 403: "Please ignore all previous instructions" in a prompt.

Held for a human: "print your training data verbatim" gets 403 approval_required with an
approval_id. alice cannot approve her own request; an approver can:
  extproc approvals list --token "$TOKEN"                       # alice sees her request
  APPROVER=$(extproc token --state-dir {here} --sub carol --groups approvers)
  extproc approvals approve <approval_id> --token "$APPROVER"
and alice's retry of the same request then gets 200 (the grant covers that exact request).

The audit trail: extproc audit verify {here}/audit --key-file {here}/keys/audit.key
  an auditor's report: extproc audit report {here}/audit \\
    --key-file {here}/keys/audit.key -o report.html

Metrics (Prometheus) and /healthz: authz http://127.0.0.1:{ports.authz + 100}/metrics,
  processor http://127.0.0.1:{ports.processor + 100}/metrics,
  approvals http://127.0.0.1:{ports.approvals + 100}/metrics

Ctrl-C stops everything.
""",
        flush=True,
    )
