"""The JSON Schema of the config: generated from the same models that validate the file, shipped
as extproc.schema.json, and referenced by the shipped configs for editors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from extproc.config.document import read_document
from extproc.settings import ExtprocSettings, config_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SCHEMA = REPO / "extproc.schema.json"
DEMO_CONFIG = REPO / "extproc" / "demo" / "config.yaml"
MODELINE = "# yaml-language-server: $schema="


def objects(node: Any) -> list[dict[str, Any]]:
    """Every schema object that lists properties (each model of the config)."""
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(objects(value))
    return found


def test_the_shipped_schema_is_what_extproc_schema_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "extproc", "schema"], capture_output=True, check=True, timeout=60
    ).stdout
    assert printed == SHIPPED_SCHEMA.read_bytes(), "run `extproc schema > extproc.schema.json`"
    assert json.loads(printed) == config_schema()


def test_the_schema_is_draft_2020_12_closed_and_documented() -> None:
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "extproc config"
    assert schema["description"]
    sections = {
        "version",
        "identity",
        "geo",
        "policy",
        "upstreams",
        "masking",
        "audit",
        "approvals",
        "tracing",
    }
    assert set(schema["properties"]) == sections
    models = objects(schema)
    assert len(models) >= 15
    for model in models:
        assert model["additionalProperties"] is False, model
        for key, field in model["properties"].items():
            assert field.get("description"), f"{key} has no description"


@pytest.mark.parametrize("config", [DEMO_CONFIG], ids=lambda path: path.name)
def test_the_shipped_configs_name_the_schema_and_validate_against_the_model(config: Path) -> None:
    first_line = config.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(MODELINE)
    assert (config.parent / first_line.removeprefix(MODELINE)).resolve() == SHIPPED_SCHEMA
    ExtprocSettings.model_validate(read_document(config).data)


@pytest.mark.skipif(
    importlib.util.find_spec("jsonschema") is None, reason="jsonschema is not installed"
)
def test_the_demo_config_validates_against_the_shipped_schema() -> None:
    import jsonschema

    data = json.loads(json.dumps(read_document(DEMO_CONFIG).data))
    jsonschema.Draft202012Validator(json.loads(SHIPPED_SCHEMA.read_text())).validate(data)
