"""`extproc approvals ...` as a user runs it (a subprocess) against an in-process service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.approval.policy import ApprovalPolicy
from extproc.demo.issuer import DevIssuer
from extproc.envoy_runner import free_port
from tests.support.approvals import ApprovalsServer, approvals_server, held_request


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path / "issuer")
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture
def server(tmp_path: Path, issuer: DevIssuer) -> Iterator[ApprovalsServer]:
    with approvals_server(tmp_path, issuer) as running:
        yield running


def extproc(
    server: ApprovalsServer, *args: str, token: str | None = None, address: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EXTPROC_TOKEN"}
    if token is not None:
        env["EXTPROC_TOKEN"] = token
    action, *rest = args
    command = [sys.executable, "-m", "extproc", "approvals", action]
    command += ["--address", address or server.address, *rest]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def token(issuer: DevIssuer, sub: str, *groups: str, ttl: int = 600) -> str:
    return issuer.mint(sub, groups, audience="api", ttl=ttl)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_list_show_and_approve_with_a_ttl(server: ApprovalsServer, issuer: DevIssuer) -> None:
    approval = server.runtime.store.create(held_request()).approval
    sam = token(issuer, "sam", "security")
    listed = extproc(server, "list", token=sam)
    assert listed.returncode == 0, listed.stderr
    assert approval.id in listed.stdout
    assert "pending" in listed.stdout
    as_json = json.loads(extproc(server, "list", "--json", token=sam).stdout)
    assert [a["id"] for a in as_json] == [approval.id]
    assert as_json[0]["requester"]["subject"] == "alice"
    shown = extproc(server, "show", approval.id, token=sam)
    assert "justification:" in shown.stdout
    assert "nightly eval" in shown.stdout
    assert "1 of ml-leads, 1 of security" in shown.stdout
    first = extproc(server, "approve", approval.id, "--ttl", "15m", token=sam)
    assert first.returncode == 0, first.stderr
    assert f"{approval.id}: pending; 1 approval(s) so far" in first.stdout
    lee = token(issuer, "lee", "ml-leads")
    second = extproc(server, "approve", approval.id, "--reason", "ok", "--json", token=lee)
    body = json.loads(second.stdout)
    assert body["status"] == "approved"
    assert [r.get("ttl_seconds", 0.0) for r in body["reviews"]] == [900.0, 0.0]
    assert "approved" in extproc(server, "show", approval.id, token=sam).stdout


def test_refused_reviews_are_one_line_with_their_code(
    server: ApprovalsServer, issuer: DevIssuer
) -> None:
    approval = server.runtime.store.create(held_request()).approval
    alice = token(issuer, "alice", "security")
    assert one_line_error(extproc(server, "approve", approval.id, token=alice)) == (
        "extproc: you cannot review your own request (self_approval)"
    )
    olga = token(issuer, "olga", "staff")
    # Someone who may not see it is told it does not exist, as for a made-up id.
    assert one_line_error(extproc(server, "approve", approval.id, token=olga)) == (
        f"extproc: no approval {approval.id} (approval_not_found)"
    )
    sam = token(issuer, "sam", "security")
    assert one_line_error(extproc(server, "deny", approval.id, token=sam)) == (
        "extproc: a denial needs a reason: pass --reason (reason_required)"
    )
    denied = extproc(server, "deny", approval.id, "--reason", "not on prod data", token=sam)
    assert denied.stdout.strip() == f"{approval.id}: denied: not on prod data"
    lee = token(issuer, "lee", "ml-leads")
    assert one_line_error(extproc(server, "approve", approval.id, token=lee)) == (
        "extproc: the request is already denied (approval_not_pending)"
    )


def test_unknown_malformed_and_expired_ids(server: ApprovalsServer, issuer: DevIssuer) -> None:
    sam = token(issuer, "sam", "security")
    unknown = "apr_" + "Q" * 22
    assert one_line_error(extproc(server, "show", unknown, token=sam)) == (
        f"extproc: no approval {unknown} (approval_not_found)"
    )
    assert one_line_error(extproc(server, "approve", "12345", token=sam)).endswith(
        "(approval_id_malformed)"
    )
    short = ApprovalPolicy(approver_groups=("security",), any_of=1, pending_ttl_seconds=0.5)
    stale = server.runtime.store.create(held_request(policy=short)).approval
    time.sleep(0.6)
    assert one_line_error(extproc(server, "approve", stale.id, token=sam)) == (
        "extproc: the request expired before it was decided (approval_expired)"
    )
    assert one_line_error(
        extproc(server, "approve", stale.id, "--ttl", "soon", token=sam)
    ).endswith("(grant_ttl_invalid)")


def test_missing_invalid_and_expired_tokens(server: ApprovalsServer, issuer: DevIssuer) -> None:
    assert one_line_error(extproc(server, "list")) == (
        "extproc: no token: pass --token or set EXTPROC_TOKEN (missing_token)"
    )
    assert one_line_error(extproc(server, "list", token="garbage")).endswith("(malformed_token)")
    expired = token(issuer, "sam", "security", ttl=-120)
    assert one_line_error(extproc(server, "list", "--token", expired)) == (
        "extproc: the token has expired (token_expired)"
    )


def test_an_unreachable_service_is_named(server: ApprovalsServer, issuer: DevIssuer) -> None:
    address = f"127.0.0.1:{free_port()}"
    error = one_line_error(
        extproc(server, "list", "--timeout", "2", token=token(issuer, "sam"), address=address)
    )
    assert error.startswith(f"extproc: cannot reach the approvals service at {address}")


def test_watch_prints_changes_as_json_lines(server: ApprovalsServer, issuer: DevIssuer) -> None:
    env = dict(os.environ, EXTPROC_TOKEN=token(issuer, "sam", "security"))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "extproc", "approvals", "watch", "--json",
         "--address", server.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # the watch is open
        approval = server.runtime.store.create(held_request()).approval
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
        change = json.loads(line)
        assert (change["kind"], change["approval"]["id"]) == ("requested", approval.id)
    finally:
        watcher.terminate()
        watcher.wait(10)
