"""Everything the scenarios run against, started once and stopped together: the dev OIDC issuer,
the demo GeoIP database, the extproc config, extproc authz and processor (N workers each), the
streaming upstream and one Envoy with a listener per scenario."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from envoy_scenarios import Listener, envoy_config
from harness import children, cpu_seconds, start_service, stop, wait_for_port
from workload import AUDIENCE, CLIENT_ADDRESS, GROUP, PATH, extproc_config, json_response

from extproc.demo.issuer import DevIssuer
from extproc.demo.up import wait_for_grpc_health
from extproc.envoy_runner import EnvoyProcess, free_port
from extproc.geo.writer import write_demo_database

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    filters: tuple[str, ...]  # "jwt", "authz", "processor"
    upstream: str  # "backend" (direct_response, 8 KB JSON) or "sse" (200 events)


@dataclass
class Stack:
    root: Path
    config: Path
    token: str
    ports: dict[str, int]
    pids: dict[str, list[int]]  # "authz", "processor", "envoy", "sse": the processes to meter

    @property
    def headers(self) -> list[str]:
        return [f"authorization: Bearer {self.token}", f"x-forwarded-for: {CLIENT_ADDRESS}"]

    def url(self, scenario: Scenario) -> str:
        return f"http://127.0.0.1:{self.ports[scenario.id]}{PATH}"

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pids) for name, pids in self.pids.items()}

    def envoy_version(self) -> str:
        """Envoy's release, from admin /server_info ("<sha>/1.40.0/Clean/RELEASE/BoringSSL")."""
        url = f"http://127.0.0.1:{self.ports['admin']}/server_info"
        with urllib.request.urlopen(url, timeout=5) as answer:
            version = str(json.load(answer).get("version", ""))
        parts = version.split("/")
        return parts[1] if len(parts) > 1 else version

    def envoy_stats(self, prefix: str) -> dict[str, int]:
        """Envoy's counters whose names start with ``prefix`` (admin /stats)."""
        url = f"http://127.0.0.1:{self.ports['admin']}/stats?format=json&filter=^{prefix}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            stats = json.load(answer)["stats"]
        return {s["name"]: int(s["value"]) for s in stats if "value" in s}


@contextlib.contextmanager
def running(
    root: Path,
    scenarios: Sequence[Scenario],
    *,
    workers: int,
    envoy_concurrency: int,
    durability: str = "before_forward",
    floor: bool = False,
) -> Iterator[Stack]:
    """``floor``: constant-answer gRPC servers (bench/floor_server.py) stand in for extproc's
    services, one process each, so the same load measures what gRPC alone costs."""
    with contextlib.ExitStack() as cleanup:
        issuer = DevIssuer(root / "issuer", port=0)
        issuer.start()
        cleanup.callback(issuer.stop)
        database = write_demo_database(root / "demo.mmdb")
        config = root / "config.yaml"
        config.write_text(
            extproc_config(issuer.issuer_url, str(database), str(root / "audit"), durability)
        )
        env = dict(
            os.environ,
            BENCH_MODEL_KEY="bench-upstream-secret",
            BENCH_MASKING_KEY="m" * 40,
            BENCH_AUDIT_KEY="a" * 40,
        )
        # The in-process measurements build the same runtimes from the same config.
        os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_")})
        # A floor server is one process serving itself; extproc's supervisor serves through
        # its worker children.
        start = start_floor if floor else start_service
        workers = 1 if floor else workers
        serving = (
            (lambda process: [process.pid]) if floor else (lambda process: children(process.pid))
        )
        authz, authz_base = start("authz", config, workers, env, root / "authz.log")
        cleanup.callback(stop, authz)
        processor, processor_base = start("processor", config, workers, env, root / "processor.log")
        cleanup.callback(stop, processor)
        sse_port = free_port()
        sse = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "sse_upstream.py"), "--port", str(sse_port)]
        )
        cleanup.callback(stop, sse)
        wait_for_port(sse_port)
        ports = {s.id: free_port() for s in scenarios} | {"admin": free_port()}
        envoy = start_envoy(root, scenarios, ports, issuer, envoy_concurrency, {
            "backend": [free_port()],
            "sse": [sse_port],
            "extproc_authz": [authz_base + i for i in range(workers)],
            "extproc_processor": [processor_base + i for i in range(workers)],
        })  # fmt: skip
        cleanup.callback(envoy.stop)
        yield Stack(
            root=root,
            config=config,
            token=issuer.mint("bench", groups=(GROUP,), audience=AUDIENCE, ttl=7200),
            ports=ports,
            pids={
                "authz": serving(authz),
                "processor": serving(processor),
                "envoy": [pid for pid in children(os.getpid()) if _is_envoy(pid)],
                "sse": [sse.pid],
            },
        )


def start_floor(
    service: str, config: Path, workers: int, env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """bench/floor_server.py for ``service`` (one process), in the shape of ``start_service``,
    once its health check answers."""
    port = free_port()
    out = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "floor_server.py"), service, "--port", str(port)],
        env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip
    if out is not None:
        out.close()
    wait_for_grpc_health(port, process=process)
    return process, port


def start_envoy(
    root: Path,
    scenarios: Sequence[Scenario],
    ports: dict[str, int],
    issuer: DevIssuer,
    concurrency: int,
    clusters: dict[str, list[int]],
) -> EnvoyProcess:
    listeners = [Listener(s.id, ports[s.id], s.filters, s.upstream) for s in scenarios]
    bootstrap = envoy_config(
        admin=ports["admin"],
        listeners=listeners,
        backend_port=clusters["backend"][0],
        backend_body=json_response(),
        clusters=clusters,
        jwks=json.dumps({"keys": issuer.published}),
        issuer=issuer.issuer_url,
        audience=AUDIENCE,
        group=GROUP,
    )
    path = root / "envoy.json"
    path.write_text(json.dumps(bootstrap))
    envoy = EnvoyProcess(
        path, admin_port=ports["admin"], log_path=root / "envoy.log", concurrency=concurrency
    )
    envoy.start()
    return envoy


def _is_envoy(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return command.endswith(b"envoy")
