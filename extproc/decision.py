"""The one decision contract between authz, the processor and the audit trail.

authz makes a ``Decision``; ``to_metadata`` writes it into Envoy dynamic metadata (namespace
``envoy.filters.http.ext_authz``) and the processor reads it back with ``from_metadata``, its
exact inverse. Nothing else crosses that boundary, and no header a client could send is ever
read as part of it.

One vocabulary of effects, fixed everywhere: a rule's ``effect`` is ``allow``, ``deny`` or
``require_approval``; what happened to the request, its ``outcome``, is ``allowed``, ``denied``,
``held`` (waiting for or refused for lack of a human approval) or ``dry_run`` (a policy in
dry-run mode would have stopped it, and it went on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson

from extproc.errors import Code, DecisionError

# The longest model name a decision carries. authz refuses a longer one (``model_name_refused``);
# its refusal records the name cut to this length, followed by ``MODEL_CUT_MARKER``.
MAX_MODEL_CHARS = 256
MODEL_CUT_MARKER = "...[cut]"
MAX_RECORDED_MODEL_CHARS = MAX_MODEL_CHARS + len(MODEL_CUT_MARKER)

Effect = Literal["allow", "deny", "require_approval"]
EFFECTS: tuple[Effect, ...] = ("allow", "deny", "require_approval")
Outcome = Literal["allowed", "denied", "held", "dry_run"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "denied", "held", "dry_run")
_OUTCOME_OF: dict[Effect, Outcome] = {
    "allow": "allowed",
    "deny": "denied",
    "require_approval": "held",
}


@dataclass(frozen=True, slots=True)
class DryRunHit:
    """A rule marked ``enforce: false`` that matched: what it would have decided."""

    rule: str
    effect: Effect
    reason: str


@dataclass(frozen=True, slots=True)
class Obligations:
    """What the processor must do for a request authz let through: the masking profile the
    route names, and for a request held for approval, the upstream credential (by name: never
    its value) to inject once an approver releases it."""

    masking_profile: str = ""
    upstream_credential: str = ""


NO_OBLIGATIONS = Obligations()


class Decision(NamedTuple):
    """Who asked, from where, to where, for what, and what the policy said about it.

    ``enforced`` is false when the whole policy runs in dry-run mode: the request goes on and
    ``effect`` is what would have happened. ``error`` is the stable code of a denial (``None``
    when the request goes on). Empty strings mean "not known" (no identity, no model, ...).
    ``model`` is never longer than ``MAX_RECORDED_MODEL_CHARS`` and holds nothing the
    deployment's masking would mask (authz refuses such a name, and records it masked and cut).
    Immutable; a named tuple because one is built per request and a frozen dataclass of this
    size costs three times as much to build.
    """

    decision_id: str
    request_id: str
    effect: Effect
    rule: str
    reason: str
    status: int = 200
    error: Code | None = None
    enforced: bool = True
    dry_run: tuple[DryRunHit, ...] = ()
    subject: str = ""
    issuer: str = ""
    groups: tuple[str, ...] = ()
    source_address: str = ""
    source_country: str = ""
    source_region: str = ""
    declared_region: str = ""
    target_region: str = ""
    model: str = ""
    data_class: str = ""
    policy_revision: str = ""
    obligations: Obligations = NO_OBLIGATIONS

    @property
    def lets_request_through(self) -> bool:
        """To the processor, at least: a denial always carries its code, and a request held
        for approval (``require_approval`` without a code) reaches the model only if the
        processor releases it, since authz withholds its upstream credential."""
        return self.error is None

    @property
    def awaits_approval(self) -> bool:
        return self.effect == "require_approval" and self.enforced and self.error is None

    @property
    def outcome(self) -> Outcome:
        if self.error is not None and self.effect == "allow":
            return "denied"  # allowed by policy, then refused by the gateway (fail closed)
        if not self.enforced and self.effect != "allow":
            return "dry_run"
        return _OUTCOME_OF[self.effect]


def bounded_model(model: str) -> str:
    """``model`` as records may hold it: at most ``MAX_MODEL_CHARS`` characters, and when cut,
    followed by ``MODEL_CUT_MARKER`` (never a padded value whole in the trail)."""
    if len(model) <= MAX_MODEL_CHARS:
        return model
    return model[:MAX_MODEL_CHARS] + MODEL_CUT_MARKER


def denial_body(
    error: Code, reason: str, rule: str, request_id: str, approval_id: str = ""
) -> bytes:
    """The JSON body of every answer the gateway gives itself, from authz or the processor."""
    body = {"error": error, "reason": reason, "rule": rule, "request_id": request_id}
    if approval_id:
        body["approval_id"] = approval_id
    return orjson.dumps(body)


# -- the metadata mapping pair --------------------------------------------------------------------
_TEXT_FIELDS = (
    "decision_id",
    "request_id",
    "rule",
    "reason",
    "subject",
    "issuer",
    "source_address",
    "source_country",
    "source_region",
    "declared_region",
    "target_region",
    "model",
    "data_class",
    "policy_revision",
)


def to_metadata(decision: Decision) -> dict[str, Any]:
    """The decision as plain values for an Envoy ``Struct`` (strings, numbers, bools, lists).

    Empty optional values are left out, so the access log and the Struct stay small."""
    values: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "request_id": decision.request_id,
        "effect": decision.effect,
        "outcome": decision.outcome,
        "rule": decision.rule,
        "reason": decision.reason,
        "status": decision.status,
        "enforced": decision.enforced,
    }
    for name in _TEXT_FIELDS[4:]:
        text = getattr(decision, name)
        if text:
            values[name] = text
    if decision.error is not None:
        values["error"] = str(decision.error)
    if decision.groups:
        values["groups"] = list(decision.groups)
    if decision.dry_run:
        values["dry_run"] = [
            {"rule": hit.rule, "effect": hit.effect, "reason": hit.reason}
            for hit in decision.dry_run
        ]
    if decision.obligations.masking_profile:
        values["masking_profile"] = decision.obligations.masking_profile
    if decision.obligations.upstream_credential:
        values["upstream_credential"] = decision.obligations.upstream_credential
    return values


def from_metadata(values: Mapping[str, Any]) -> Decision:
    """The inverse of ``to_metadata``. Anything authz could not have written is refused with
    ``DecisionError`` (the processor then refuses the exchange, it never guesses)."""
    text = {name: _text(values, name) for name in _TEXT_FIELDS}
    if not text["decision_id"]:
        raise DecisionError("the decision has no decision_id")
    if len(text["model"]) > MAX_RECORDED_MODEL_CHARS:
        raise DecisionError("the decision's model is longer than authz ever writes one")
    error = values.get("error")
    if error is not None:
        try:
            error = Code(_expect(error, str, "error"))
        except ValueError:
            raise DecisionError("the decision names an unknown error code") from None
    status = _expect(values.get("status", 200), float | int, "status")
    if isinstance(status, bool) or not 100 <= status <= 599 or int(status) != status:
        raise DecisionError("the decision's status is not an HTTP status")
    return Decision(
        effect=_effect(values.get("effect"), "effect"),
        status=int(status),
        error=error,
        enforced=_expect(values.get("enforced", True), bool, "enforced"),
        dry_run=tuple(_dry_run_hit(item) for item in _list(values, "dry_run")),
        groups=tuple(_expect(item, str, "groups") for item in _list(values, "groups")),
        obligations=_obligations(
            _text(values, "masking_profile"), _text(values, "upstream_credential")
        ),
        **text,
    )


def _obligations(masking_profile: str, upstream_credential: str) -> Obligations:
    if not masking_profile and not upstream_credential:
        return NO_OBLIGATIONS
    return Obligations(masking_profile, upstream_credential)


def _dry_run_hit(item: Any) -> DryRunHit:
    hit = _expect(item, dict, "dry_run")
    return DryRunHit(
        rule=_text(hit, "rule"),
        effect=_effect(hit.get("effect"), "dry_run.effect"),
        reason=_text(hit, "reason"),
    )


def _effect(value: Any, name: str) -> Effect:
    for effect in EFFECTS:
        if value == effect:
            return effect
    raise DecisionError(f"the decision's {name} is not one of {', '.join(EFFECTS)}")


def _text(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name, "")
    if not isinstance(value, str):
        raise DecisionError(f"the decision's {name} is not a string")
    return value


def _list(values: Mapping[str, Any], name: str) -> list[Any]:
    value = values.get(name, [])
    if not isinstance(value, list):
        raise DecisionError(f"the decision's {name} is not a list")
    return value


def _expect(value: Any, kind: Any, name: str) -> Any:
    if not isinstance(value, kind):
        raise DecisionError(f"the decision's {name} has the wrong type")
    return value
