"""What masking produces: findings (never a value), results, block hits, and its one error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from extproc.approval.policy import ApprovalPolicy
from extproc.errors import Code, ExtprocError


class MaskingError(ExtprocError):
    """The body cannot be masked; the caller must not let it pass.

    Codes: masking_failed, invalid_json, invalid_utf8, unsupported_charset, binary_part,
    invalid_encoding, unsupported_encoding, decompression_limit. Reasons never quote the body.
    """

    code = Code.MASKING_FAILED


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    direction: str
    location: str
    action: str


# A frozen dataclass's __init__ sets each field through object.__setattr__ by name; a body
# with many findings makes one per value, so the hot paths fill the slots directly (the same
# immutable object, a third of the cost).
_new = object.__new__
_set_type = vars(Finding)["type"].__set__
_set_direction = vars(Finding)["direction"].__set__
_set_location = vars(Finding)["location"].__set__
_set_action = vars(Finding)["action"].__set__


def new_finding(type_: str, direction: str, location: str, action: str) -> Finding:
    """``Finding(type_, direction, location, action)``, made faster."""
    made: Finding = _new(Finding)
    _set_type(made, type_)
    _set_direction(made, direction)
    _set_location(made, location)
    _set_action(made, action)
    return made


@dataclass(frozen=True, slots=True)
class MaskResult:
    body: bytes
    findings: tuple[Finding, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class BlockHit:
    rule: str
    reason: str
    approval: ApprovalPolicy | None = None  # the rule holds for approval instead of refusing


def findings_by_type(findings: Iterable[Finding]) -> dict[str, int]:
    return dict(Counter(f"{f.direction}.{f.type}" for f in findings))


def relocated(findings: tuple[Finding, ...], prefix: str) -> list[Finding]:
    return [replace(finding, location=prefix + finding.location) for finding in findings]
