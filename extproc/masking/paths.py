"""JSON field paths for field rules: ``$.patient.ssn``, ``$.messages[*].content``, ``$..email``.

Supported: ``$`` root, ``.key`` and ``['key']`` members, ``[n]`` and ``[*]`` elements, ``*``
any member, ``..key`` recursive descent. Paths compile once into a matcher over the walker's
current location (a tuple of keys and indices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Location = tuple[str | int, ...]
_TOKEN = re.compile(r"\.\.([A-Za-z_][\w-]*|\*)|\.([A-Za-z_][\w-]*|\*)|\[(\*|\d+)\]|\['([^']*)'\]")
ANY = object()


@dataclass(frozen=True, slots=True)
class Step:
    key: object  # a str, an int, or ANY
    recursive: bool = False


class PathError(ValueError):
    pass


def compile_path(text: str) -> tuple[Step, ...]:
    if not text.startswith("$"):
        raise PathError(f"a JSON path starts with '$': {text!r}")
    steps: list[Step] = []
    position = 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PathError(f"cannot read the JSON path {text!r} at {text[position:]!r}")
        recursive, member, index, quoted = match.groups()
        if recursive is not None:
            steps.append(Step(ANY if recursive == "*" else recursive, recursive=True))
        elif member is not None:
            steps.append(Step(ANY if member == "*" else member))
        elif index is not None:
            steps.append(Step(ANY if index == "*" else int(index)))
        else:
            steps.append(Step(quoted))
        position = match.end()
    if not steps:
        raise PathError("the path '$' names the whole body; name a field")
    return tuple(steps)


def matches(steps: tuple[Step, ...], location: Location) -> bool:
    return _match(steps, 0, location, 0)


def _match(steps: tuple[Step, ...], si: int, location: Location, li: int) -> bool:
    if si == len(steps):
        return li == len(location)
    step = steps[si]
    if step.recursive:
        # ..key matches key at this depth or any deeper one
        return any(
            _key_fits(step.key, location[i]) and _match(steps, si + 1, location, i + 1)
            for i in range(li, len(location))
        )
    if li == len(location) or not _key_fits(step.key, location[li]):
        return False
    return _match(steps, si + 1, location, li + 1)


def _key_fits(expected: object, actual: str | int) -> bool:
    if expected is ANY:
        return True
    return expected == actual


def render(location: Location) -> str:
    out = "$"
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
