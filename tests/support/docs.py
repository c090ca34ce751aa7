"""The examples of ``docs/*.md``: fenced blocks, each with the marker that says how it is tested.

A marker is an HTML comment on the line before the fence (blank lines between are allowed):

    <!-- test: KIND key=value key="a quoted value" -->

Kinds (the harness in ``tests/test_docs.py`` runs each):

- ``config name=N [expect=invalid]``: a whole extproc config, saved as ``demo/N.yaml`` in the
  docs' demo state and loaded as ``extproc check`` does (invalid: it must be refused);
- ``fragment of=BASE name=N [expect=invalid]``: YAML merged into the config ``BASE`` (``demo`` is
  the demo config; mappings merge key by key, anything else replaces), then as ``config``;
- ``suite of=N [name=S] [expect=fail]``: a policy-test suite run against the config ``N``;
  every case passes (with ``expect=fail``, one fails: an example of a failure); ``name`` saves
  it as ``demo/S.yaml`` for ``extproc test`` commands;
- ``cli [exit=N]``: ``$ extproc ...`` commands run in the docs' workspace (the demo state is
  ``demo/`` with a sample trail in ``demo/audit``; ``tampered/`` and ``full-disk/`` are trails
  with an edited record and a full disk; ``audit/`` is a trail with two session recordings,
  ``edited/`` a copy with one recording edited and the other deleted, ``archive/`` a copy to
  prune; ``$EXTPROC_AUDIT_KEY`` holds the audit key); lines after a command are its output
  (``...`` matches any text; trailing blank lines are not compared); each command exits 0
  (the last one: N);
- ``argv``: ``$ extproc ...`` command lines parsed by the real parser, not run (servers);
- ``envoy``: a whole Envoy config, validated by the Envoy binary;
- ``excerpt of=PATH``: lines of a file in the repository, in order (``...`` skips lines;
  comment-only lines are ignored on both sides);
- ``event``: an audit record; every field is one the audit event or the chain defines;
- ``none reason="..."`` (or ``none, REASON``): not tested, with the reason; for diagrams and
  output shown on its own, sparingly.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("config", "fragment", "suite", "cli", "argv", "envoy", "excerpt", "event", "none")
REQUIRED = {"config": ("name",), "fragment": ("of", "name"), "suite": ("of",), "excerpt": ("of",)}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_MARKER = re.compile(r"^\s*<!--\s*test:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    info: str  # the fence's info string (yaml, console, ...)
    text: str
    kind: str | None  # None: no marker
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"


def parse_marker(text: str) -> tuple[str, dict[str, str]]:
    if re.match(r"none\b", text):  # none reason="why", or none, why
        reason = text[4:].lstrip(" ,")
        if reason.startswith("reason="):
            reason = " ".join(shlex.split(reason[len("reason=") :]))
        return "none", {"reason": reason} if reason else {}
    words = shlex.split(text)
    if not words:
        raise ValueError("an empty test marker")
    kind, options = words[0], {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"marker option {word!r} is not key=value")
        options[key] = value
    return kind, options


def blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    marker: tuple[str, dict[str, str]] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        matched = _MARKER.match(line)
        if matched:
            marker = parse_marker(matched.group(1))
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip():
                marker = None
            index += 1
            continue
        indent, ticks, info = fence.groups()
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(ticks):
            text = lines[index]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            index += 1
        kind, options = marker if marker else (None, {})
        found.append(
            Block(doc, index - len(body), info.strip(), "\n".join(body) + "\n", kind, options)
        )
        marker = None
        index += 1
    return found


@dataclass
class Command:
    argv: list[str]
    stdin: bytes | None = None
    assign: str | None = None  # NAME=$(extproc ...)
    output: list[str] = field(default_factory=list)


def commands(text: str) -> list[Command]:
    """``$ `` lines and the output lines after each."""
    found: list[Command] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            found.append(parse_command(line[2:]))
        elif found:
            found[-1].output.append(line)
        elif line.strip():
            raise ValueError(f"output before any command: {line!r}")
    for command in found:
        while command.output and not command.output[-1].strip():
            command.output.pop()
    return found


def parse_command(line: str) -> Command:
    assign = None
    matched = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=\$\((.*)\)", line.strip())
    if matched:
        assign, line = matched.group(1), matched.group(2)
    stdin = None
    if "|" in line:
        left, _, line = line.partition("|")
        words = shlex.split(left)
        if not words or words[0] not in ("echo", "printf"):
            raise ValueError(f"only echo or printf may feed a command: {left!r}")
        stdin = (" ".join(words[1:]) + ("\n" if words[0] == "echo" else "")).encode()
    return Command(shlex.split(line), stdin, assign)


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; ``...`` in an expected line matches any text; trailing spaces ignored."""
    if len(expected) != len(actual):
        return False
    for want, got in zip(expected, actual, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.rstrip().split("..."))
        if not re.fullmatch(pattern, got.rstrip()):
            return False
    return True


def excerpt_found(excerpt: str, text: str) -> bool:
    """The excerpt's lines appear in ``text`` in order, contiguous between ``...`` lines
    (comments and runs of spaces do not count)."""

    def meaningful(lines: list[str]) -> list[str]:
        kept = (" ".join(re.sub(r"(^|\s)#.*$", "", line).split()) for line in lines)
        return [line for line in kept if line]

    haystack = meaningful(text.splitlines())
    segments: list[list[str]] = [[]]
    for line in excerpt.splitlines():
        if line.strip() in ("...", "# ..."):
            segments.append([])
        else:
            segments[-1].extend(meaningful([line]))
    position = 0
    for segment in segments:
        if not segment:
            continue
        for start in range(position, len(haystack) - len(segment) + 1):
            if haystack[start : start + len(segment)] == segment:
                position = start + len(segment)
                break
        else:
            return False
    return True
