"""Masking profiles: what is found in a body and what becomes of it, compiled from the
``masking`` config section (``extproc.masking.settings``) or built directly in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from extproc.approval.policy import ApprovalPolicy
from extproc.masking.detectors import DETECTOR_NAMES, Detector, builtin_detectors
from extproc.masking.operators import ACTIONS, Action, ActionSpec, Operator, operator
from extproc.masking.paths import Step

__all__ = ["ACTIONS", "DIRECTIONS", "Action", "ActionSpec", "BlockRule", "Direction", "FieldRule",
           "MaskingConfig", "Operator", "Profile", "default_masking_config"]  # fmt: skip
Direction = Literal["request", "response"]
DIRECTIONS: tuple[Direction, ...] = ("request", "response")


@dataclass(frozen=True, slots=True)
class FieldRule:
    path: tuple[Step, ...]
    text: str
    action: ActionSpec


@dataclass(frozen=True, slots=True)
class BlockRule:
    name: str
    reason: str
    pattern: Any = None  # an RE2 pattern
    detector: str | None = None
    directions: frozenset[str] = frozenset({"request"})
    # Set: a match holds the request for a human approval instead of refusing it.
    approval: ApprovalPolicy | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    mode: Literal["enforce", "report"] = "enforce"
    directions: frozenset[str] = frozenset(DIRECTIONS)
    detectors: tuple[Detector, ...] = builtin_detectors(DETECTOR_NAMES)
    actions: Mapping[str, Mapping[str, ActionSpec]] = field(default_factory=dict)
    default_action: ActionSpec = "redact"
    fields: tuple[FieldRule, ...] = ()
    scan: tuple[tuple[Step, ...], ...] | None = None
    invalid_json: Literal["text", "deny"] = "text"
    block: tuple[BlockRule, ...] = ()
    binary_parts: Literal["refuse", "pass"] = "refuse"
    # Tokens the exchange issued in its request are put back in its response (tokenize only).
    restore: bool = False

    def action_for(self, type_: str, direction: str) -> Operator:
        return operator(self.actions.get(direction, {}).get(type_, self.default_action))


@dataclass(frozen=True, slots=True)
class MaskingConfig:
    profiles: Mapping[str, Profile]
    default_profile: str
    key: bytes = field(repr=False)
    compressed: Literal["decode", "deny"] = "decode"
    group_profiles: tuple[tuple[str, str], ...] = ()  # (group, profile), in config order
    max_inflated_bytes: int = 16 * 1024 * 1024  # a compressed body may inflate to this, no more
    max_inflate_ratio: int = 100  # ... and to at most this many times its compressed size


def default_masking_config(key: bytes) -> MaskingConfig:
    """Every built-in detector, redact, both directions: what ``extproc mask`` uses bare."""
    return MaskingConfig({"standard": Profile("standard")}, "standard", key)
