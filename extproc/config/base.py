"""The strict base of every config section's model, and the field types the sections share.

Each section (identity, geo, policy, masking, audit, upstreams) describes its part of the YAML
file as a pydantic model deriving from ``SettingsModel``: an unknown key is an error (a typo must
never be silently ignored: a security team would believe a rule is active when it is not), values
are never coerced (``"false"`` is not ``false``), choices are ``Literal`` types and every field
has a description, which becomes the JSON Schema's documentation. The YAML loader hands the models
tuples for sequences, so the frozen models hold tuples and stay hashable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# A path into the config: mapping keys and sequence indexes, as pydantic reports them.
Loc = tuple[str | int, ...]


class SettingsModel(BaseModel):
    """A config mapping: known keys only, no coercion, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SingleAsList:
    """``Annotated[tuple[X, ...], SINGLE_AS_LIST]``: a single value stands for a list of one
    (``groups_any: ml-eu``); the JSON Schema says both forms are allowed."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._wrap, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        array = handler(schema)
        return {"anyOf": [array["items"], array]}

    @staticmethod
    def _wrap(value: object) -> object:
        return value if isinstance(value, tuple | list) else (value,)


SINGLE_AS_LIST = SingleAsList()

Name = Annotated[str, Field(min_length=1)]
"""A non-empty string."""

Names = Annotated[tuple[Name, ...], Field(min_length=1), SINGLE_AS_LIST]
"""A non-empty string or a non-empty list of them."""

Seconds = Annotated[float, Field(ge=0)]
FilePath = Annotated[
    str,
    Field(min_length=1, description="a file path; a relative one is read from the config's folder"),
]


def resolve_path(value: str, base_dir: Path) -> Path:
    """A path from the config: ``~`` expanded, a relative one taken from the config's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


@dataclasses.dataclass(frozen=True, slots=True)
class OneOf:
    """``Annotated[str, OneOf(values, complaint)]``: a string that must be one of ``values``, for
    choices that are data rather than a ``Literal`` type (the built-in detector names).
    ``complaint`` is formatted with the ``value`` found and the ``allowed`` values."""

    values: tuple[str, ...]
    complaint: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["enum"] = list(self.values)
        return json_schema

    def _check(self, value: str) -> str:
        if value not in self.values:
            allowed = ", ".join(self.values)
            raise PydanticCustomError(
                "choice",
                "{complaint}",
                {"complaint": self.complaint.format(value=value, allowed=allowed)},
            )
        return value


def one_message(message: str) -> WrapValidator:
    """Report any invalid value of a field with one sentence, instead of one line per member of
    a union (``discovery: true`` or a URL)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("invalid", message) from None

    return WrapValidator(validate)


def runtime_default(runtime: type[Any], name: str) -> Any:
    """The default of a field of a runtime dataclass.

    Code builds runtime objects directly too (tests, built-in defaults), so the runtime dataclass
    keeps its defaults and the model reads them from there: each default is written once, and the
    schema shows the value the services really use.
    """
    for field in dataclasses.fields(runtime):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            factory: Callable[[], Any] = field.default_factory  # type: ignore[assignment]
            if factory is not dataclasses.MISSING:  # type: ignore[comparison-overlap]
                return factory()
    raise LookupError(f"{runtime.__name__}.{name} has no default")
