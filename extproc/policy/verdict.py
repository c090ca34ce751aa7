"""What the policy said, and why: the policy's part of a ``extproc.decision.Decision``."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.decision import DryRunHit, Effect

DEFAULT_RULE = "default"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every verdict names its rule and a human reason.

    ``enforced`` is false when the whole policy runs in dry-run mode: the request goes on, and
    ``effect`` is what would have happened. ``dry_run`` lists the would-be verdicts of matching
    rules that are themselves in dry-run mode, in rule order.
    """

    effect: Effect
    rule: str
    reason: str
    status: int = 200
    enforced: bool = True
    dry_run: tuple[DryRunHit, ...] = ()
