"""The ``approval`` block of a ``require_approval`` rule (a policy rule, or a masking block
rule for content), as a typed config model compiled into ``ApprovalPolicy``.

```yaml
approval:
  thresholds: {security: 1, ml-leads: 1}   # or: any_of: 1 (with approver_groups)
  scope: request                            # this exact request (digest); or route (+ model)
  grant_ttl: 15m                            # max_grant_ttl caps what an approver may give
  pending_ttl: 30m
  hold: 30s                                 # the processor holds the request this long
  justification_required: true              # from the x-approval-justification header
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from extproc.approval.policy import ApprovalPolicy, parse_approval_policy
from extproc.config.base import Name, SettingsModel
from extproc.config.problems import Problems
from extproc.errors import ConfigError

Duration = Annotated[
    int | float | str,
    Field(description='seconds, or a duration such as "30s", "15m", "1h30m"'),
]


class ApprovalSettings(SettingsModel):
    """Who must approve, how many, what a grant covers, and the three clocks."""

    approver_groups: tuple[Name, ...] | None = Field(
        None, description="groups whose members may review (default: the thresholds' groups)"
    )
    thresholds: dict[Name, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="approvals needed per group, all met, by distinct people"
    )
    any_of: Annotated[int, Field(ge=1)] | None = Field(
        None, description="or: this many approvals from any approver group"
    )
    scope: Literal["request", "route"] = Field(
        "request", description="a grant covers this exact request, or the route and model"
    )
    grant_ttl: Duration = Field(900, description="how long a grant lasts")
    max_grant_ttl: Duration = Field(3600, description="the longest grant an approver may give")
    pending_ttl: Duration = Field(1800, description="how long a request waits for a decision")
    hold: Duration = Field(
        30,
        description="how long the processor holds the request while waiting (0: answer 403 "
        "approval_required with the approval id at once); keep it under Envoy's "
        "max_message_timeout and every idle timeout in front of it",
    )
    justification_required: bool = Field(
        False, description="the caller must say why, in the x-approval-justification header"
    )
    justification_max_bytes: Annotated[int, Field(ge=1)] = Field(
        1024, description="a longer justification is refused (400)"
    )
    approve_reason_required: bool = Field(False, description="approvers must give a reason")


def compile_approval(settings: ApprovalSettings, problems: Problems) -> ApprovalPolicy | None:
    raw = settings.model_dump(exclude_none=True)
    if "thresholds" in raw:
        raw["thresholds"] = dict(raw["thresholds"])
    if "approver_groups" in raw:
        raw["approver_groups"] = list(raw["approver_groups"])
    try:
        return parse_approval_policy(raw, where="approval")
    except ConfigError as exc:
        problems.add((), exc.reason.removeprefix("approval: "))
        return None
