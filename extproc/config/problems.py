"""Problems found in a config, collected so that every one is reported at once.

A section's compile step (model → runtime objects) records what it cannot build with a path
relative to the section (``("rules", 2, "when", "target_region")``) and goes on; at the end it
raises ``InvalidSettings`` with all of them. Whoever validates the file adds the section's key and
turns paths into ``file:line`` (see ``extproc.config.validation``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from extproc.config.base import Loc

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Problem:
    """``loc`` is the key the message is about; ``at``, when set, is where the line comes from
    (an unknown key is reported on its mapping, at the unknown key's own line)."""

    loc: Loc
    message: str
    at: Loc | None = None

    def under(self, prefix: Loc) -> Problem:
        at = None if self.at is None else (*prefix, *self.at)
        return Problem((*prefix, *self.loc), self.message, at)


class InvalidSettings(Exception):
    """A section could not be compiled; ``problems`` says every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in self.problems))


class Problems:
    """Collects problems under a path prefix; views made by ``at`` share one list."""

    def __init__(self, prefix: Loc = (), found: list[Problem] | None = None) -> None:
        self._prefix = prefix
        self._found: list[Problem] = [] if found is None else found

    def add(self, loc: Loc, message: str) -> None:
        self._found.append(Problem((*self._prefix, *loc), message))

    def at(self, *loc: str | int) -> Problems:
        """A view that records under ``loc`` (a rule, a profile)."""
        return Problems((*self._prefix, *loc), self._found)

    def attempt(self, build: Callable[[], T], *loc: str | int) -> T | None:
        """``build()``, or ``None`` with its problems recorded under ``loc``."""
        try:
            return build()
        except InvalidSettings as invalid:
            self._found.extend(p.under((*self._prefix, *loc)) for p in invalid.problems)
            return None

    def __bool__(self) -> bool:
        return bool(self._found)

    def check(self) -> None:
        """Raise every problem recorded so far, if there is one."""
        if self._found:
            raise InvalidSettings(self._found)
