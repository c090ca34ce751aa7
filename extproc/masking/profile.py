"""Masking profiles from the ``masking`` config section.

```yaml
masking:
  key_env: EXTPROC_MASKING_KEY      # or key_file: path (>= 32 bytes); tokens and hashes are keyed
  default_profile: standard
  group_profiles: {contractors: strict}    # callers in these groups get this profile
  profiles:
    standard:
      mode: enforce                 # or report: find and audit, change nothing
      directions: [request, response]
      detectors: [card, us_ssn, email, phone, iban, ipv4, ipv6, secret]
      actions: {default: redact, email: tokenize, card: last4}
      response_actions: {email: redact}          # overrides for one direction
      custom:
        - {name: employee_id, pattern: 'EMP-[0-9]{6}', action: tokenize}
      fields:
        - {path: $.patient.ssn, action: redact}  # always masked, whatever the value
        - {path: $..email, action: tokenize}
      scan: [$.messages[*].content]              # only these strings are scanned (default: all)
      invalid_json: text                         # or deny
      block:
        - {name: reveal-instructions, pattern: '(?i)ignore (all )?previous instructions',
           reason: prompt injection}
        - {name: no-cards-to-this-model, detector: card}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import re2

from extproc.config.keys import read_key
from extproc.config.node import Node
from extproc.masking.detectors import DETECTOR_NAMES, Detector, builtin_detectors
from extproc.masking.paths import PathError, Step, compile_path

Action = Literal["redact", "tokenize", "hash", "last4", "drop"]
ACTIONS: tuple[Action, ...] = ("redact", "tokenize", "hash", "last4", "drop")
DIRECTIONS = ("request", "response")
_VALIDATORS = ("luhn", "iban")


@dataclass(frozen=True, slots=True)
class FieldRule:
    path: tuple[Step, ...]
    text: str
    action: Action


@dataclass(frozen=True, slots=True)
class BlockRule:
    name: str
    reason: str
    pattern: Any = None  # an RE2 pattern
    detector: str | None = None
    directions: frozenset[str] = frozenset({"request"})


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    mode: Literal["enforce", "report"] = "enforce"
    directions: frozenset[str] = frozenset(DIRECTIONS)
    detectors: tuple[Detector, ...] = builtin_detectors(DETECTOR_NAMES)
    actions: Mapping[str, Mapping[str, Action]] = field(default_factory=dict)
    default_action: Action = "redact"
    fields: tuple[FieldRule, ...] = ()
    scan: tuple[tuple[Step, ...], ...] | None = None
    invalid_json: Literal["text", "deny"] = "text"
    block: tuple[BlockRule, ...] = ()

    def action_for(self, type_: str, direction: str) -> Action:
        return self.actions.get(direction, {}).get(type_, self.default_action)


@dataclass(frozen=True, slots=True)
class MaskingConfig:
    profiles: Mapping[str, Profile]
    default_profile: str
    key: bytes = field(repr=False)
    compressed: Literal["decode", "deny"] = "decode"
    group_profiles: tuple[tuple[str, str], ...] = ()  # (group, profile), in config order


def default_masking_config(key: bytes) -> MaskingConfig:
    """Every built-in detector, redact, both directions: what ``extproc mask`` uses bare."""
    return MaskingConfig({"standard": Profile("standard")}, "standard", key)


def parse_masking_config(node: Node, base_dir: Path) -> MaskingConfig:
    node.reject_unknown(
        ("key_env", "key_file", "default_profile", "profiles", "compressed", "group_profiles")
    )
    key = read_key(node, base_dir, "masking")
    profiles: dict[str, Profile] = {}
    for name, child in node.child("profiles").items():
        profiles[name] = _profile(name, child)
    if not profiles:
        raise node.child("profiles").error("define at least one profile")
    default = node.string("default_profile", next(iter(profiles)))
    if default not in profiles:
        raise node.child("default_profile").error(f"no profile named {default!r}")
    compressed = node.choice("compressed", ("decode", "deny"), "decode")
    group_profiles = []
    for group, child in node.child("group_profiles", {}).items():
        if child.value not in profiles:
            raise child.error(f"no profile named {child.value!r}")
        group_profiles.append((group, str(child.value)))
    return MaskingConfig(profiles, default, key, compressed, tuple(group_profiles))  # type: ignore[arg-type]


def _profile(name: str, node: Node) -> Profile:
    node.reject_unknown(
        ("mode", "directions", "detectors", "actions", "request_actions", "response_actions",
         "custom", "fields", "scan", "invalid_json", "block")
    )  # fmt: skip
    names = node.string_list("detectors", list(DETECTOR_NAMES))
    for detector in names:
        if detector not in DETECTOR_NAMES:
            raise node.child("detectors").error(
                f"unknown detector {detector!r} (built in: {', '.join(DETECTOR_NAMES)})"
            )
    detectors = builtin_detectors(names)
    custom = tuple(_custom(element) for element in node.child("custom", []).elements())
    detectors += tuple(d for d, _ in custom)
    base = _actions(node.child("actions", {}))
    default_action = base.pop("default", "redact")
    for custom_detector, custom_action in custom:
        if custom_action is not None:
            base.setdefault(custom_detector.type, custom_action)
    actions = {
        direction: {**base, **_actions(node.child(f"{direction}_actions", {}))}
        for direction in DIRECTIONS
    }
    directions = node.string_list("directions", list(DIRECTIONS))
    for direction in directions:
        if direction not in DIRECTIONS:
            raise node.child("directions").error(f"unknown direction {direction!r}")
    scan_node = node.child("scan", None)
    scan = None
    if scan_node.value is not None:
        scan = tuple(_path(element) for element in scan_node.elements())
    return Profile(
        name=name,
        mode=node.choice("mode", ("enforce", "report"), "enforce"),  # type: ignore[arg-type]
        directions=frozenset(directions),
        detectors=detectors,
        actions=actions,
        default_action=default_action,
        fields=tuple(_field(element) for element in node.child("fields", []).elements()),
        scan=scan,
        invalid_json=node.choice("invalid_json", ("text", "deny"), "text"),  # type: ignore[arg-type]
        block=tuple(_block(element) for element in node.child("block", []).elements()),
    )


def _actions(node: Node) -> dict[str, Action]:
    out: dict[str, Action] = {}
    for type_name, child in node.items():
        if child.value not in ACTIONS:
            raise child.error(f"expected one of {', '.join(ACTIONS)}, got {child.value!r}")
        out[type_name if type_name == "default" else _type_label(type_name)] = child.value
    return out


def _type_label(name: str) -> str:
    return {"card": "CARD", "us_ssn": "US_SSN", "email": "EMAIL", "phone": "PHONE",
            "iban": "IBAN", "ipv4": "IPV4", "ipv6": "IPV6", "secret": "SECRET"}.get(
        name, name.upper()
    )  # fmt: skip


def _compile_re2(node: Node, text: str) -> Any:
    try:
        return re2.compile(text)
    except re2.error as exc:
        raise node.error(f"invalid RE2 pattern: {exc}") from None


def _custom(node: Node) -> tuple[Detector, Action | None]:
    node.reject_unknown(("name", "pattern", "validator", "action"))
    name = node.string("name")
    pattern = _compile_re2(node.child("pattern"), node.string("pattern"))
    validator_name = node.optional_string("validator")
    if validator_name is not None and validator_name not in _VALIDATORS:
        raise node.child("validator").error(f"expected one of {', '.join(_VALIDATORS)}")
    action = node.child("action", None).value
    if action is not None and action not in ACTIONS:
        raise node.child("action").error(f"expected one of {', '.join(ACTIONS)}")
    validate = None
    if validator_name == "luhn":
        from stdnum import luhn

        validate = lambda m: bool(luhn.is_valid("".join(c for c in m.group(0) if c.isdigit())))  # noqa: E731
    elif validator_name == "iban":
        from stdnum import iban

        validate = lambda m: bool(iban.is_valid(m.group(0).replace(" ", "")))  # noqa: E731
    return Detector(name, name.upper(), pattern, validate), action


def _path(node: Node) -> tuple[Step, ...]:
    if not isinstance(node.value, str):
        raise node.error("expected a JSON path such as $.messages[*].content")
    try:
        return compile_path(node.value)
    except PathError as exc:
        raise node.error(str(exc)) from None


def _field(node: Node) -> FieldRule:
    node.reject_unknown(("path", "action"))
    path_node = node.child("path")
    action = node.choice("action", ACTIONS, "redact")
    return FieldRule(_path(path_node), str(path_node.value), action)  # type: ignore[arg-type]


def _block(node: Node) -> BlockRule:
    node.reject_unknown(("name", "reason", "pattern", "detector", "directions"))
    name = node.string("name")
    if node.has("pattern") == node.has("detector"):
        raise node.error("a block rule needs exactly one of 'pattern' or 'detector'")
    pattern = None
    detector = None
    if node.has("pattern"):
        pattern = _compile_re2(node.child("pattern"), node.string("pattern"))
    else:
        detector = node.choice("detector", DETECTOR_NAMES)
    directions = frozenset(node.string_list("directions", ["request"]))
    return BlockRule(
        name=name,
        reason=node.string("reason", f"the content matches blocking rule {name}"),
        pattern=pattern,
        detector=detector,
        directions=directions,
    )
