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
