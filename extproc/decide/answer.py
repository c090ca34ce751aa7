"""What Envoy should do with a request: the decision, and the header changes of an allow."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.decision import Decision, denial_body
from extproc.errors import Code
from extproc.policy.facts import RequestFacts

DECISION_ID_HEADER = "x-extproc-decision-id"


@dataclass(frozen=True, slots=True)
class Answer:
    """``decision.error`` is set exactly when the request is denied."""

    decision: Decision
    set_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    www_authenticate: str | None = None
    facts: RequestFacts | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.lets_request_through

    @property
    def status(self) -> int:
        return self.decision.status

    @property
    def error(self) -> Code | None:
        return self.decision.error

    @property
    def request_id(self) -> str:
        return self.decision.request_id

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    def deny_body(self) -> bytes:
        decision = self.decision
        return denial_body(
            decision.error or Code.INTERNAL_ERROR,
            decision.reason,
            decision.rule,
            decision.request_id,
        )
