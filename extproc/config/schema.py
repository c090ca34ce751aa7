"""The JSON Schema of a settings model, for editors (yaml-language-server) and reviewers.

pydantic writes draft 2020-12 with ``additionalProperties: false`` on every model (they forbid
extra keys); this adds the dialect and the document's title, and drops the titles pydantic makes
up for each property from its name ("Jwks Uri"), which say nothing the key does not.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(model: type[BaseModel], *, title: str, description: str) -> dict[str, Any]:
    generated = model.model_json_schema(mode="validation")
    generated.pop("title", None)
    generated.pop("description", None)
    _drop_property_titles(generated)
    return {"$schema": DIALECT, "title": title, "description": description, **generated}


def _drop_property_titles(node: Any) -> None:
    if isinstance(node, dict):
        for schema in node.get("properties", {}).values():
            if isinstance(schema, dict):
                schema.pop("title", None)
        for value in node.values():
            _drop_property_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_property_titles(value)
