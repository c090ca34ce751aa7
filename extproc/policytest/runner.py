"""Run a suite: each case decided by the same pipeline authz runs (after the token: principals
are claims, mapped by the issuer's config like a verified token's) and, with a body, masked and
checked by the same exchange the processor runs. No server, no network, no clock dependence."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from extproc.app import build_authz
from extproc.config.document import read_document
from extproc.config.validation import Validation
from extproc.decide.answer import Answer
from extproc.decide.request import RequestView
from extproc.errors import Code, ConfigError
from extproc.exchange.machine import Exchange
from extproc.identity.verifier import identity_from_claims
from extproc.masking.engine import Masker
from extproc.policy.trace import render_trace
from extproc.policytest.suite import BodyFixture, Case, Suite
from extproc.runtime import AuthzRuntime
from extproc.settings import Config, load_config

FAR_FUTURE = 4_102_444_800.0  # 2100-01-01: the claims of a test principal never expire


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    got: Mapping[str, Any]
    mismatches: tuple[str, ...] = ()
    why: tuple[str, ...] = field(default=())  # the policy trace, when the rule was wrong

    @property
    def passed(self) -> bool:
        return not self.mismatches


def load_suite(path: Path) -> Suite:
    validation = Validation(read_document(path))
    suite = validation.validate(Suite)
    validation.raise_if_any()
    assert suite is not None
    _check_references(suite, path)
    return suite


def run_suite(path: Path, config_path: Path | None = None) -> list[CaseResult]:
    suite = load_suite(path)
    if config_path is None:
        if suite.config is None:
            raise ConfigError(f"{path}: name the config under test (config: ...) or --config")
        config_path = path.resolve().parent / suite.config
    config = load_config(config_path)
    ids = (f"test-{n}" for n in itertools.count(1))
    runtime = build_authz(config, load_keys=False, new_id=lambda: next(ids))
    try:
        return [_run_case(case, suite, config, runtime) for case in suite.tests]
    finally:
        runtime.close()


def _run_case(case: Case, suite: Suite, config: Config, runtime: AuthzRuntime) -> CaseResult:
    fixtures = suite.fixtures
    route = fixtures.routes[case.route]
    body = _body(fixtures.bodies[case.body]) if case.body else None
    headers = {name.lower(): value for name, value in route.headers.items()}
    if body is not None:
        headers.setdefault("content-type", body[1])
    view = RequestView(
        request_id=case.name,
        method=route.method.upper(),
        path=route.path.split("?", 1)[0],
        host=route.host,
        source_address=fixtures.sources[case.source],
        headers=headers,
        route=route.ext,
        body=body[0] if body else None,
    )
    if case.principal is None:
        answer = runtime.authorizer.decide(view)
    else:
        claims = {"exp": FAR_FUTURE, **_as_json(fixtures.principals[case.principal])}
        issuer = _issuer_of(claims, config)
        answer = runtime.authorizer.decide_identified(view, identity_from_claims(claims, issuer))
    got = _outcome(answer)
    if body is not None and answer.allowed and config.masking is not None:
        got.update(_processed(config, answer, route.method, route.path, body))
    mismatches = _compare(case, got)
    why: tuple[str, ...] = ()
    if mismatches and answer.facts is not None:
        policy = runtime.authorizer.policy
        why = tuple(render_trace(policy.trace(answer.facts), policy.default))
    return CaseResult(case.name, got, mismatches, why)


def _outcome(answer: Answer) -> dict[str, Any]:
    decision = answer.decision
    return {
        "effect": decision.effect,
        "outcome": decision.outcome,
        "rule": decision.rule,
        "error": str(decision.error) if decision.error else None,
        "status": decision.status if decision.error else 200,
    }


def _processed(
    config: Config, answer: Answer, method: str, path: str, body: tuple[bytes, str]
) -> dict[str, Any]:
    masking = config.masking
    assert masking is not None
    maskers = {name: Masker(p, masking.key) for name, p in masking.profiles.items()}
    exchange = Exchange(masking, maskers)
    exchange.add_decision(answer.decision)
    step = exchange.request_headers({":method": method, ":path": path, "content-type": body[1]})
    refusal = step.refusal or exchange.request_body(body[0]).refusal
    got: dict[str, Any] = {"masked": tuple(sorted({f.type for f in exchange.request.findings}))}
    got["blocked"] = exchange.blocked.rule if exchange.blocked else None
    hold = exchange.pending_hold
    if refusal is None and hold is not None:  # waits for a human: the caller sees a 403 at best
        got.update(outcome="held", rule=hold.decision.rule, status=403)
        got["error"] = str(Code.APPROVAL_REQUIRED)
    if refusal is not None:
        got.update(outcome="denied", rule=refusal.rule, error=str(refusal.error))
        got["status"] = refusal.status
    return got


def _compare(case: Case, got: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for name, wanted in case.expect.model_dump(exclude_none=True).items():
        actual = got.get(name)
        if name == "masked":
            wanted, actual = sorted(set(wanted)), sorted(set(actual or ()))
        if actual != wanted:
            out.append(f"{name}: expected {_show(wanted)}, got {_show(actual)}")
    return tuple(out)


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return "nothing" if value is None else str(value)


def _body(fixture: BodyFixture) -> tuple[bytes, str]:
    if fixture.text is not None:
        return fixture.text.encode("utf-8"), fixture.content_type or "text/plain"
    return orjson.dumps(fixture.json_value), fixture.content_type or "application/json"


def _as_json(value: Any) -> Any:
    """Claims as a token's JSON would carry them (the suite's YAML lists arrive as tuples)."""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    return value


def _issuer_of(claims: Mapping[str, Any], config: Config) -> Any:
    issuers = config.identity.issuers
    for issuer in issuers:
        if claims.get("iss") in (issuer.issuer, issuer.name):
            return issuer
    return issuers[0]


def _check_references(suite: Suite, path: Path) -> None:
    fixtures = suite.fixtures
    problems = []
    for index, case in enumerate(suite.tests):
        for kind, name, table in (
            ("principal", case.principal, fixtures.principals),
            ("source", case.source, fixtures.sources),
            ("route", case.route, fixtures.routes),
            ("body", case.body, fixtures.bodies),
        ):
            if name is not None and name not in table:
                known = ", ".join(table) or "none"
                problems.append(
                    f"{path}: tests[{index}] ({case.name}): no {kind} named {name!r} "
                    f"(defined: {known})"
                )
    for name, body in fixtures.bodies.items():
        if (body.json_value is None) == (body.text is None):
            problems.append(f"{path}: fixtures.bodies.{name}: set exactly one of json and text")
    if problems:
        raise ConfigError("\n".join(problems), errors=tuple(problems))
