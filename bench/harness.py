"""Helpers the benchmarks share: start the extproc services, read the CPU time of processes from
/proc, run wrk and read its report, describe the machine."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from extproc.demo.up import wait_for_grpc_health  # noqa: E402
from extproc.envoy_runner import free_port_range  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------------
def start_service(
    service: str, config: Path, workers: int, env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``extproc serve SERVICE`` with ``workers`` processes on consecutive ports; returns the
    supervisor and the first port once every worker answers its gRPC health check."""
    base = free_port_range(workers)
    out = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "extproc", "serve", service, "--config", str(config),
         "--port", str(base), "--workers", str(workers), "--log-level", "warning"],
        env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip
    if out is not None:
        out.close()
    for i in range(workers):
        wait_for_grpc_health(base + i, process=process)
    return process, base


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


# -- the machine ----------------------------------------------------------------------------------
def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# -- wrk ------------------------------------------------------------------------------------------
def ensure_wrk() -> str | None:
    """wrk's path, installed with apt-get when missing and running as root; None (with a
    message on stderr) when it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        print("wrk is needed: run `sudo apt-get install -y wrk`, then again", file=sys.stderr)
        return None
    print("installing wrk (apt-get install -y wrk)", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def wrk(
    url: str,
    connections: int,
    duration: float,
    headers: list[str],
    script: Path | None = None,
    threads: int = 1,
) -> WrkResult:
    """One closed-loop wrk run (``connections`` keep-alive connections, as fast as answers come)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return WrkResult(
        rps=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=_latency(out, "50"),
        p99_ms=_latency(out, "99"),
        requests=int(number(r"(\d+) requests in")),
        non2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"\s{percentile}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def post_script(path: Path, body_file: Path, content_type: str = "application/json") -> Path:
    """A wrk Lua script that POSTs the content of ``body_file``."""
    path.write_text(
        'wrk.method = "POST"\n'
        f'local f = assert(io.open("{body_file}", "rb"))\n'
        'wrk.body = f:read("*a")\n'
        "f:close()\n"
        f'wrk.headers["content-type"] = "{content_type}"\n'
    )
    return path
