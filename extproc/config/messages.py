"""pydantic's validation errors → one readable sentence each, at the path of the YAML value.

pydantic reports ``loc`` tuples that may hold more than the path of a value (a union member's
name, ``[key]`` for a bad mapping key, the index a single string got when read as a list of one);
the path kept is the part that exists in the data, so the line found is the value's own. Messages
say what was expected and what was found, in the words of the config, without links or
"Input should be".
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from extproc.config.base import Loc
from extproc.config.document import ABSENT, child, describe
from extproc.config.problems import Problem

_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "string_unicode": "expected valid Unicode text",
}


def validation_problems(error: ValidationError, data: Any, model: type[BaseModel]) -> list[Problem]:
    """One ``Problem`` per error of validating ``data`` as ``model``, in the order reported."""
    details = error.errors(include_url=False)
    out: list[Problem] = []
    for detail in details:
        if detail["type"] == "too_short" and _has_inner_error(detail, details):
            continue  # pydantic counts the items that failed as missing: say why they failed
        problem = _problem(detail, data, model)
        if problem not in out:
            out.append(problem)
    return out


def _has_inner_error(detail: ErrorDetails, details: list[ErrorDetails]) -> bool:
    loc = tuple(detail["loc"])
    return any(
        len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in details
    )


def _problem(detail: ErrorDetails, data: Any, model: type[BaseModel]) -> Problem:
    loc: Loc = tuple(detail["loc"])
    kind = detail["type"]
    if kind == "missing":
        return Problem(_data_path(data, loc[:-1]), f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        path = _data_path(data, loc)
        return Problem(path[:-1], _unknown_key(loc[-1], _keys_at(model, loc[:-1])), at=path)
    if "[key]" in loc:  # a mapping key is invalid: report it on its mapping, at its line
        path = _data_path(data, loc[: loc.index("[key]")])
        message = _message(detail)
        if kind == "string_type":
            message = f"keys must be strings, got {describe(path[-1])}"
        return Problem(path[:-1], message, at=path)
    return Problem(_data_path(data, loc), _message(detail))


def _message(detail: ErrorDetails) -> str:
    kind, ctx, found = detail["type"], detail.get("ctx", {}), detail["input"]
    got = f"got {describe(found)}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, {got}"
    if kind == "literal_error":
        # pydantic words it "'allow', 'deny' or 'require_approval'"
        allowed = [v.strip("'") for v in str(ctx["expected"]).replace(" or ", ", ").split(", ")]
        wanted = allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        return f"expected {wanted}, {got}"
    if kind == "string_too_short":
        return f"expected a non-empty string, {got}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"expected at least {least} {'entry' if least == 1 else 'entries'}, got none"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx['ge'])}, got {found}"
    if kind == "greater_than":
        return f"must be more than {_number(ctx['gt'])}, got {found}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx['le'])}, got {found}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", detail["msg"]))
    return detail["msg"]


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _data_path(data: Any, loc: Loc) -> Loc:
    """The part of ``loc`` that walks the data: union member names and the index a single
    string got as a list of one are dropped."""
    path: list[str | int] = []
    for part in loc:
        found = child(data, part)
        if found is not ABSENT:
            data = found
            path.append(part)
    return tuple(path)


def closest(word: str, choices: Collection[str]) -> str | None:
    """The choice ``word`` was most likely meant to be (a typo, or a shortened key such as
    ``leeway`` for ``leeway_seconds``), if one is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    if close:
        return close[0]
    longer = [c for c in choices if len(word) >= 4 and c.startswith(word)]
    return longer[0] if len(longer) == 1 else None


def _unknown_key(key: str | int, allowed: list[str]) -> str:
    close = closest(str(key), allowed)
    if close:
        return f"unknown key {key!r} (did you mean {close!r}?)"
    if allowed:
        return f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
    return f"unknown key {key!r}"


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the mapping at ``loc`` accepts, found by following the model's field types."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    found = _model_in(annotation)
    if found is None:
        return []
    return [field.alias or name for name, field in found.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    found = _model_in(annotation)
    if found is not None and isinstance(part, str):
        for name, field in found.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    for candidate in _members(annotation):
        origin, args = get_origin(candidate), get_args(candidate)
        if origin is tuple and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: ``Annotated`` unwrapped, unions split."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None
