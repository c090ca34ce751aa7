"""`extproc serve` under faults, as an operator meets them: a worker killed while the config on
disk is garbage comes back on the last good config, and its sibling serves throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.demo.up import wait_for_grpc_health
from extproc.envoy_runner import free_port_range
from extproc.geo.writer import write_demo_database

CONFIG = """\
version: 1
identity:
  issuers:
    - {name: demo, issuer: "https://issuer.example", jwks_file: jwks.json,
       audiences: [api], algorithms: [RS256]}
geo:
  database: demo.mmdb
  regions: {eu: [DE]}
policy:
  rules: []
"""


def serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def worker_pids(log: Path) -> dict[int, int]:
    """worker index → pid, from the "serving" log lines (the latest start wins)."""
    pids: dict[int, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "serving":
            pids[int(entry["worker"])] = int(entry["pid"])
    return pids


def test_a_killed_worker_restarts_on_the_last_good_config_while_its_sibling_serves(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    port = free_port_range(2)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extproc", "serve", "authz", "--config",
             str(tmp_path / "config.yaml"), "--port", str(port), "--workers", "2",
             "--reload-interval", "0.2"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_grpc_health(port, process=process)
        wait_for_grpc_health(port + 1, process=process)
        first = worker_pids(log)[0]
        (tmp_path / "config.yaml").write_text("version: 1\nidentity: [garbage\n")
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        sibling_always_up = True
        while time.monotonic() < deadline:
            sibling_always_up &= serving(port + 1)
            restarted = worker_pids(log).get(0, first)
            if restarted != first and serving(port):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("worker 0 did not come back:\n" + log.read_text()[-3000:])
        assert sibling_always_up
        assert process.poll() is None
        text = log.read_text()
        assert "the config on disk is invalid; the worker restarts with the last good one" in text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def scrape(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_aggregate_every_worker_and_health_counts_the_living(tmp_path: Path) -> None:
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

    from extproc.envoy_runner import free_port

    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    port, metrics_port = free_port_range(2), free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extproc", "serve", "authz", "--config",
             str(tmp_path / "config.yaml"), "--port", str(port), "--workers", "2",
             "--metrics-port", str(metrics_port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_grpc_health(port, process=process)
        wait_for_grpc_health(port + 1, process=process)
        for worker_port in (port, port, port + 1):
            with grpc.insecure_channel(f"127.0.0.1:{worker_port}") as channel:
                answer = external_auth_pb2_grpc.AuthorizationStub(channel).Check(
                    external_auth_pb2.CheckRequest(), timeout=5
                )
                assert answer.denied_response.status.code == 401
        status, health = scrape(metrics_port, "/healthz")
        assert (status, json.loads(health)["alive"]) == (200, 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, text = scrape(metrics_port, "/metrics")
            counted = sample(
                text, "extproc_authz_decisions_total", outcome="denied", error="missing_token"
            )
            if counted == 3:
                break
            time.sleep(0.2)
        assert status == 200
        assert counted == 3, text[-2000:]
        assert sample(text, "extproc_config_info") == 2
        assert 'extproc_authz_check_duration_seconds_bucket{le="0.0001"' in text
        before = worker_pids(log)
        for pid in before.values():
            os.kill(pid, signal.SIGKILL)
        seen = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, health = scrape(metrics_port, "/healthz")
            seen.add((status, json.loads(health)["alive"]))
            if 503 in {s for s, _ in seen} and (200, 2) in seen:
                break
            time.sleep(0.05)
        # Down while no worker lives (before the backoff restarts them), then serving again.
        assert (503, 0) in seen
        assert (200, 2) in seen
        assert set(worker_pids(log).values()).isdisjoint(before.values())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_a_port_in_use_is_listen_failed_once_per_attempt_and_the_supervisor_gives_up(
    tmp_path: Path,
) -> None:
    import socket

    from extproc.supervise import GIVE_UP_AFTER

    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "extproc", "serve", "authz", "--config",
             str(tmp_path / "config.yaml"), "--port", str(port), "--workers", "1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    failures = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"worker failed"' in line
    ]
    assert len(failures) == GIVE_UP_AFTER, output
    assert all(entry["error"] == "listen_failed" for entry in failures)
    assert all(f"127.0.0.1:{port}" in entry["reason"] for entry in failures)
    assert '"no worker can serve; stopping"' in output


def test_a_taken_metrics_port_stops_the_service_before_any_worker_starts(tmp_path: Path) -> None:
    import socket

    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    port = free_port_range(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "extproc", "serve", "authz", "--config",
             str(tmp_path / "config.yaml"), "--port", str(port), "--workers", "1",
             "--metrics-port", str(metrics_port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert f"cannot listen on 127.0.0.1:{metrics_port}" in output
    assert '"serving"' not in output


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    from tests.support.processes import descendants, kill_all, wait_until_gone

    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    port = free_port_range(2)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extproc", "serve", "authz", "--config",
             str(tmp_path / "config.yaml"), "--port", str(port), "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    children: set[int] = set()
    try:
        wait_for_grpc_health(port, process=process)
        wait_for_grpc_health(port + 1, process=process)
        workers = set(worker_pids(log).values())
        children = descendants(process.pid)
        assert workers <= children
        process.kill()  # SIGKILL: the supervisor cannot stop its workers itself
        process.wait()
        assert wait_until_gone(children, timeout=5) == set(), log.read_text()[-3000:]
        assert not serving(port)
        assert not serving(port + 1)
    finally:
        kill_all(children | {process.pid})
