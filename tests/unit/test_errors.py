"""Error codes are data: one table, every code the gateway can answer with is in it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from extproc.decision import denial_body
from extproc.errors import CODES, Code, ExtprocError, status_of

PACKAGE = Path(__file__).resolve().parents[2] / "extproc"


def test_every_code_has_an_http_status_and_a_meaning() -> None:
    assert set(CODES) == set(Code)
    for code, info in CODES.items():
        assert 400 <= info.status <= 599, code
        assert info.meaning, code
        assert not info.meaning.endswith("."), code


def test_codes_are_stable_snake_case_strings() -> None:
    for code in Code:
        assert code.value == code.name.lower()
        assert json.loads(json.dumps(code)) == code.value


def test_no_code_is_written_as_a_bare_string_at_a_call_site() -> None:
    """A literal ``code="..."`` or ``error="..."`` would bypass the table; Code members only."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.keyword)
                and node.arg in ("code", "error")
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.value.lineno}")
    assert offenders == []


def test_a_deny_body_carries_the_code_and_an_errors_status_follows_its_code() -> None:
    body = json.loads(denial_body(Code.PROMPT_BLOCKED, "no cards here", "no-cards", "r-1"))
    assert body == {
        "error": "prompt_blocked",
        "reason": "no cards here",
        "rule": "no-cards",
        "request_id": "r-1",
    }
    assert ExtprocError("x", code=Code.AUDIT_UNAVAILABLE).status == 503
    assert status_of(Code.MISSING_TOKEN) == 401
