"""What a ``require_approval`` rule asks of its approvers: ``ApprovalPolicy``.

Who may review (``approver_groups``), how many approvals close the request (``thresholds``:
``{security: 1, ml-leads: 1}`` must all be met, by distinct reviewers; or ``any_of``: N
approvals from any approver group), what a grant covers (``scope``: ``request``, this exact
request; ``route``, the route and model for the subject), and three separate clocks: how long a
request may wait for a decision (``pending_ttl``), how long a grant lasts (``grant_ttl``, which
an approver may set per review, never beyond ``max_grant_ttl``), and how long the processor holds
the original request while waiting (``hold``).

A policy is copied into every approval it opens, so a config reload never changes the rules of
a request already waiting. ``parse_approval_policy`` reads the plain mapping a rule's
``approval`` block holds (durations as ``90``, ``"30s"``, ``"15m"``, ``"1h30m"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from extproc.config.durations import parse_duration
from extproc.errors import ConfigError

Scope = Literal["request", "route"]
SCOPES: tuple[Scope, ...] = ("request", "route")
DEFAULT_JUSTIFICATION_MAX_BYTES = 1024
_KEYS = (
    "approver_groups",
    "thresholds",
    "any_of",
    "scope",
    "grant_ttl",
    "max_grant_ttl",
    "pending_ttl",
    "hold",
    "justification_required",
    "justification_max_bytes",
    "approve_reason_required",
)


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """One rule's approval requirements. Construction refuses an inconsistent policy
    (``ValueError``), so a policy that exists can always be satisfied."""

    approver_groups: tuple[str, ...]
    thresholds: tuple[tuple[str, int], ...] = ()  # (group, approvals) pairs, all must be met
    any_of: int = 0  # or: this many approvals from members of any approver group
    scope: Scope = "request"
    grant_ttl_seconds: float = 900.0
    max_grant_ttl_seconds: float = 3600.0
    pending_ttl_seconds: float = 1800.0
    hold_seconds: float = 30.0
    justification_required: bool = False
    justification_max_bytes: int = DEFAULT_JUSTIFICATION_MAX_BYTES
    approve_reason_required: bool = False

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise ValueError(problem)

    @property
    def approvals_needed(self) -> int:
        """The fewest distinct approvers that can close the request."""
        return self.any_of or sum(count for _group, count in self.thresholds)


def _problem(policy: ApprovalPolicy) -> str | None:
    if not policy.approver_groups or not all(policy.approver_groups):
        return "approver_groups must name at least one group"
    if bool(policy.thresholds) == bool(policy.any_of):
        return "set either thresholds (per group) or any_of, not both and not neither"
    if policy.any_of < 0:
        return "any_of must be at least 1"
    for group, count in policy.thresholds:
        if group not in policy.approver_groups:
            return f"threshold group {group!r} is not one of the approver groups"
        if count < 1:
            return f"the threshold of group {group!r} must be at least 1"
    if policy.scope not in SCOPES:
        return f"scope must be one of {', '.join(SCOPES)}"
    for name in ("grant_ttl_seconds", "max_grant_ttl_seconds", "pending_ttl_seconds"):
        if getattr(policy, name) <= 0:
            return f"{name.removesuffix('_seconds')} must be positive"
    if policy.grant_ttl_seconds > policy.max_grant_ttl_seconds:
        return "grant_ttl must not exceed max_grant_ttl"
    if policy.hold_seconds < 0:
        return "hold must not be negative"
    if policy.justification_max_bytes < 1:
        return "justification_max_bytes must be at least 1"
    return None


def parse_approval_policy(raw: Mapping[str, Any], where: str = "approval") -> ApprovalPolicy:
    """The policy of a rule's ``approval`` block. ``ConfigError`` names ``where`` and the key."""
    unknown = sorted(str(key) for key in raw if key not in _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    try:
        thresholds = _thresholds(raw.get("thresholds", {}))
        groups = _strings(raw.get("approver_groups", [group for group, _n in thresholds]))
        any_of = raw.get("any_of", 0 if thresholds else 1)
        if isinstance(any_of, bool) or not isinstance(any_of, int):
            raise ValueError("any_of must be a whole number")
        return ApprovalPolicy(
            approver_groups=groups,
            thresholds=thresholds,
            any_of=any_of,
            scope=raw.get("scope", "request"),
            grant_ttl_seconds=parse_duration(raw.get("grant_ttl", 900)),
            max_grant_ttl_seconds=parse_duration(raw.get("max_grant_ttl", 3600)),
            pending_ttl_seconds=parse_duration(raw.get("pending_ttl", 1800)),
            hold_seconds=parse_duration(raw.get("hold", 30)),
            justification_required=_flag(raw, "justification_required"),
            justification_max_bytes=_count(raw, "justification_max_bytes"),
            approve_reason_required=_flag(raw, "approve_reason_required"),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _thresholds(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping):
        raise ValueError("thresholds must map group names to counts")
    pairs = []
    for group, count in value.items():
        if not isinstance(group, str) or isinstance(count, bool) or not isinstance(count, int):
            raise ValueError("thresholds must map group names to whole numbers")
        pairs.append((group, count))
    return tuple(sorted(pairs))


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("approver_groups must be a list of group names")
    return tuple(dict.fromkeys(value))


def _flag(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, DEFAULT_JUSTIFICATION_MAX_BYTES)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number")
    return value
