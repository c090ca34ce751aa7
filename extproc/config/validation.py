"""Validate a document against section models and compile it, collecting every problem.

``Validation`` runs pydantic on the document (or a part of it) and each section's compile step,
records every problem with its path, and raises one ``ConfigError`` listing them all, each as
``config.yaml:12: policy.rules[2].effect: expected one of allow, deny, require_approval, got
'alow'``, in file order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from extproc.config.document import ABSENT, Document, describe, format_loc
from extproc.config.messages import validation_problems
from extproc.config.problems import InvalidSettings, Problem
from extproc.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class Validation:
    """Every problem found in one document so far."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.problems: list[Problem] = []

    def validate(self, model: type[M], *loc: str | int) -> M | None:
        """The value at ``loc`` as ``model``, or ``None`` with its problems recorded."""
        data = self.document.value_at(loc)
        parent = self.document.value_at(loc[:-1])
        if loc and not isinstance(parent, dict):
            self.problems.append(Problem(loc[:-1], f"expected a mapping, got {describe(parent)}"))
            return None
        if data is ABSENT:
            self.problems.append(Problem(loc[:-1], f"missing required key {loc[-1]!r}"))
            return None
        try:
            return model.model_validate(data)
        except ValidationError as error:
            found = validation_problems(error, data, model)
            self.problems.extend(problem.under(loc) for problem in found)
            return None

    def compile(self, build: Callable[[], R], *loc: str | int) -> R | None:
        """``build()`` (a section's compile step), or ``None`` with its problems recorded under
        ``loc``."""
        try:
            return build()
        except InvalidSettings as invalid:
            self.problems.extend(problem.under(loc) for problem in invalid.problems)
            return None

    def failed(self, *loc: str | int) -> bool:
        """Whether a problem was recorded at or under ``loc``."""
        return any(problem.loc[: len(loc)] == loc for problem in self.problems)

    def lines(self) -> tuple[str, ...]:
        document = self.document
        located = [
            (document.line_of(problem.loc if problem.at is None else problem.at), problem)
            for problem in self.problems
        ]
        located.sort(key=lambda pair: pair[0])
        return tuple(
            f"{document.file}:{line}: {format_loc(problem.loc)}: {problem.message}"
            for line, problem in located
        )

    def raise_if_any(self) -> None:
        if self.problems:
            errors = self.lines()
            raise ConfigError("\n".join(errors), errors=errors)


def load_section(document: Document, key: str, model: type[M], build: Callable[[M], R]) -> R:
    """Validate and compile one section of a document (``extproc mask`` reads only ``masking``;
    tests read one section at a time)."""
    validation = Validation(document)
    settings = validation.validate(model, key)
    result = None if settings is None else validation.compile(lambda: build(settings), key)
    validation.raise_if_any()
    assert result is not None  # no problem was recorded, so the section compiled
    return result
