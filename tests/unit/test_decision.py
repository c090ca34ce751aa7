"""The decision contract: outcomes from effects, and the metadata mapping pair."""

from __future__ import annotations

import pytest

from extproc.audit.event import build_event
from extproc.decision import (
    MAX_MODEL_CHARS,
    MAX_RECORDED_MODEL_CHARS,
    Decision,
    DryRunHit,
    Obligations,
    bounded_model,
    from_metadata,
    to_metadata,
)
from extproc.errors import Code, DecisionError

ALLOW = Decision("d", "r", "allow", "eu-team", "ok")


@pytest.mark.parametrize(
    ("decision", "outcome", "through"),
    [
        (ALLOW, "allowed", True),
        (ALLOW._replace(effect="deny", status=403, error=Code.FORBIDDEN), "denied", False),
        (
            ALLOW._replace(effect="require_approval", status=403, error=Code.APPROVAL_REQUIRED),
            "held",
            False,
        ),
        (ALLOW._replace(effect="deny", enforced=False), "dry_run", True),
        (ALLOW._replace(effect="require_approval", enforced=False), "dry_run", True),
        (ALLOW._replace(enforced=False), "allowed", True),
        (
            ALLOW._replace(status=503, error=Code.UPSTREAM_CREDENTIAL_UNAVAILABLE),
            "denied",
            False,
        ),
    ],
)
def test_each_effect_has_one_outcome(decision: Decision, outcome: str, through: bool) -> None:
    assert decision.outcome == outcome
    assert decision.lets_request_through is through


def test_to_metadata_and_from_metadata_are_inverses() -> None:
    decision = ALLOW._replace(
        dry_run=(DryRunHit("shadow", "deny", "would deny"),),
        groups=("a", "b"),
        subject="alice",
        obligations=Obligations("strict"),
        policy_revision="abc",
    )
    assert from_metadata(to_metadata(decision)) == decision


def test_from_metadata_accepts_what_protobuf_gives_back_for_numbers() -> None:
    values = to_metadata(ALLOW)
    values["status"] = 200.0  # Struct numbers are doubles
    assert from_metadata(values) == ALLOW


@pytest.mark.parametrize(
    "forged",
    [
        {"groups": "ml-eu"},
        {"status": 200.5},
        {"status": True},
        {"subject": 7},
        {"dry_run": "x"},
        {"dry_run": ["x"]},
        {"error": "nope"},
        {"effect": None},
    ],
)
def test_anything_authz_could_not_have_written_is_refused(forged: dict[str, object]) -> None:
    with pytest.raises(DecisionError):
        from_metadata({**to_metadata(ALLOW), **forged})


def test_a_model_longer_than_authz_writes_is_refused_and_one_it_writes_passes() -> None:
    cut = bounded_model("m" * 200_000)
    assert len(cut) == MAX_RECORDED_MODEL_CHARS
    assert cut.startswith("m" * MAX_MODEL_CHARS)
    assert bounded_model("gpt-x") == "gpt-x"
    assert from_metadata(to_metadata(ALLOW._replace(model=cut))).model == cut
    with pytest.raises(DecisionError):
        from_metadata({**to_metadata(ALLOW), "model": "m" * (MAX_RECORDED_MODEL_CHARS + 1)})


def test_an_audit_event_never_holds_a_model_longer_than_the_bound() -> None:
    padded = ALLOW._replace(model="gpt-" + "A" * 200_000)
    event = build_event(service="processor", time="t", decision=padded, method="POST", path="/")
    assert len(event["model"]) == MAX_RECORDED_MODEL_CHARS
