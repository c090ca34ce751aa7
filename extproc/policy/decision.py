"""What the policy decided, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Effect = Literal["allow", "deny", "require_approval"]
EFFECTS: tuple[Effect, ...] = ("allow", "deny", "require_approval")
DEFAULT_RULE = "default"


@dataclass(frozen=True, slots=True)
class DryRunHit:
    """A rule marked ``enforce: false`` that matched: what it would have decided."""

    rule: str
    effect: Effect
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Every decision names its rule and a human reason.

    ``enforced`` is false when the whole policy runs in dry-run mode: the request goes on, and
    ``effect`` is what would have happened. ``dry_run`` lists the would-be decisions of matching
    rules that are themselves in dry-run mode, in rule order.
    """

    effect: Effect
    rule: str
    reason: str
    status: int = 200
    enforced: bool = True
    dry_run: tuple[DryRunHit, ...] = ()

    @property
    def lets_request_through(self) -> bool:
        return self.effect == "allow" or not self.enforced
