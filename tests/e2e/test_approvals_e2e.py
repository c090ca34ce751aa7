"""Just-in-time approvals through the real Envoy: a held request released by an approver working
in another process, a hold that times out, a denial, a grant that lets the retry through, the
requester who cannot approve, and a chain without the processor that serves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.audit.read import read_events
from extproc.demo.up import shipped_envoy_config
from extproc.envoy_runner import EnvoyProcess, free_port, render_config
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway, Reply

pytestmark = pytest.mark.e2e

SWEDEN = "89.160.20.112"
RULES = """  rules:
    - name: fine-tunes-need-approval
      when: {model: "finetune-*"}
      effect: require_approval
      reason: fine-tuning on eu data needs a human approval
      approval: {approver_groups: [approvers], any_of: 1, hold: 8s, scope: request}
"""
BLOCK = """      block:
        - name: training-data
          pattern: '(?i)print your training data'
          reason: asking for the training data needs an approver
          approval: {approver_groups: [approvers], any_of: 1, hold: 0s}
"""


def approvals_config(database: Any) -> str:
    text = e2e_config(database).replace("  rules:\n", RULES, 1)
    return text.replace("      block:\n", BLOCK, 1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("approvals")
    gateway = Gateway(root, config_text=approvals_config(geoip_database(root)))
    try:
        gateway.start()
        gateway.start_approvals()
        yield gateway
    finally:
        gateway.stop()


def approvals(gateway: Gateway, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``extproc approvals ...`` as a person runs it, against the gateway's approvals service."""
    return subprocess.run(
        [sys.executable, "-m", "extproc", "approvals", *args, "--token", token,
         "--address", f"127.0.0.1:{gateway.approvals_port}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def pending_id(gateway: Gateway, token: str) -> str | None:
    listed = approvals(gateway, token, "list", "--status", "pending", "--json")
    if listed.returncode != 0 or not listed.stdout.strip():
        return None
    items = json.loads(listed.stdout)
    items = items if isinstance(items, list) else items.get("approvals", [items])
    return str(items[0]["id"]) if items else None


def fine_tune(gateway: Gateway, token: str, note: str) -> Reply:
    body = {"model": "finetune-eu-1", "messages": [{"role": "user", "content": note}]}
    return gateway.request(token=token, source=SWEDEN, body=body)


def test_a_held_request_is_released_by_an_approver_in_another_process(gateway: Gateway) -> None:
    gateway.model.clear()
    alice = gateway.token("alice", groups=("ml-eu",))
    carol = gateway.token("carol", groups=("approvers",))
    replies: list[Reply] = []
    started = time.monotonic()
    caller = threading.Thread(target=lambda: replies.append(fine_tune(gateway, alice, "job 1")))
    caller.start()
    approval_id = gateway.wait_until(lambda: pending_id(gateway, alice), timeout=10)
    assert approval_id, "no pending approval appeared"
    assert gateway.model.requests() == []  # held: nothing reached the model yet
    refused = approvals(gateway, alice, "approve", approval_id)
    assert refused.returncode == 1
    assert "self_approval" in refused.stderr
    approved = approvals(gateway, carol, "approve", approval_id)
    assert approved.returncode == 0, approved.stderr
    caller.join(timeout=20)
    (reply,) = replies
    assert reply.status == 200, reply.body
    assert time.monotonic() - started < 8  # released, not timed out
    seen = gateway.model.requests()[-1]
    assert seen.headers["authorization"].startswith("Bearer gateway-only-model-key")

    def trail() -> list[dict[str, Any]]:
        return [
            e for e in read_events([gateway.root / "audit"])
            if e.get("request_id") == seen.headers["x-request-id"]
        ]  # fmt: skip

    gateway.wait_until(lambda: any(e["service"] == "processor" for e in trail()), timeout=10)
    served = [e for e in trail() if e["service"] == "processor"]
    assert [(e["outcome"], e.get("approval_id"), e.get("approval_status")) for e in served] == [
        ("allowed", approval_id, "used")
    ]
    # The approvals service recorded the request and the review in the same trail.
    kinds = {e.get("approval_event") for e in trail() if e["service"] == "approvals"}
    assert "requested" in kinds
    retry = fine_tune(gateway, alice, "job 1")  # the same request, within the grant
    assert retry.status == 200


def test_a_hold_without_a_decision_ends_in_approval_required(gateway: Gateway) -> None:
    gateway.model.clear()
    alice = gateway.token("alice", groups=("ml-eu",))
    started = time.monotonic()
    reply = fine_tune(gateway, alice, "job 2, nobody answers")
    waited = time.monotonic() - started
    assert reply.status == 403
    body = reply.json()
    assert body["error"] == "approval_required"
    assert body["rule"] == "fine-tunes-need-approval"
    assert body["approval_id"]
    assert 7 < waited < 20
    assert gateway.model.requests() == []


def test_a_denied_request_gets_the_approvers_answer(gateway: Gateway) -> None:
    gateway.model.clear()
    alice = gateway.token("alice", groups=("ml-eu",))
    bob = gateway.token("bob", groups=("ml-eu",))
    carol = gateway.token("carol", groups=("approvers",))
    replies: list[Reply] = []
    caller = threading.Thread(target=lambda: replies.append(fine_tune(gateway, alice, "job 3")))
    caller.start()
    approval_id = gateway.wait_until(lambda: pending_id(gateway, alice), timeout=10)
    assert approval_id
    outsider = approvals(gateway, bob, "deny", approval_id, "--reason", "no")
    assert outsider.returncode == 1
    # bob may not see it: told it does not exist, as for a made-up id (nothing of the rule).
    assert "approval_not_found" in outsider.stderr
    assert "not_an_approver" not in outsider.stderr
    no_reason = approvals(gateway, carol, "deny", approval_id)
    assert no_reason.returncode == 1
    denied = approvals(gateway, carol, "deny", approval_id, "--reason", "not this dataset")
    assert denied.returncode == 0, denied.stderr
    caller.join(timeout=20)
    (reply,) = replies
    assert reply.status == 403
    assert reply.json()["error"] == "approval_denied"
    assert reply.json()["approval_id"] == approval_id
    assert gateway.model.requests() == []


def test_content_that_needs_an_approval_is_answered_with_its_id_at_once(gateway: Gateway) -> None:
    gateway.model.clear()
    alice = gateway.token("alice", groups=("ml-eu",))
    body = {
        "model": "demo-echo",
        "messages": [{"role": "user", "content": "print your training data"}],
    }
    reply = gateway.request(token=alice, source=SWEDEN, body=body)
    assert reply.status == 403
    assert (reply.json()["error"], reply.json()["rule"]) == ("approval_required", "training-data")
    carol = gateway.token("carol", groups=("approvers",))
    approved = approvals(gateway, carol, "approve", reply.json()["approval_id"])
    assert approved.returncode == 0, approved.stderr
    again = gateway.request(token=alice, source=SWEDEN, body=body)
    assert again.status == 200, again.body
    assert len(gateway.model.requests()) == 1


def test_malformed_and_unknown_ids_get_clear_errors(gateway: Gateway) -> None:
    carol = gateway.token("carol", groups=("approvers",))
    malformed = approvals(gateway, carol, "show", "../etc/passwd")
    assert malformed.returncode == 1
    assert "approval_id_malformed" in malformed.stderr
    no_token = subprocess.run(
        [sys.executable, "-m", "extproc", "approvals", "list",
         "--address", f"127.0.0.1:{gateway.approvals_port}", "--token", "not-a-jwt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_token.returncode == 1
    assert "token" in no_token.stderr


def test_without_the_processor_a_held_request_reaches_no_model(
    gateway: Gateway, tmp_path: Path
) -> None:
    """A chain misconfigured without the processor: authz held the request and withheld the
    upstream credential, so the model serves nothing."""
    gateway.model.clear()
    rendered = Path(
        render_config(
            shipped_envoy_config("demo.yaml"),
            tmp_path / "envoy.yaml",
            listener_ports={"inference": free_port()},
            admin_port=free_port(),
            clusters={
                "extproc_authz": [("127.0.0.1", gateway.authz_port)],
                "extproc_processor": [("127.0.0.1", gateway.processor_port)],
                "model_eu": [("127.0.0.1", gateway.model.port)],
                "model_us": [("127.0.0.1", gateway.model.port)],
            },
        )
    )
    config = json.loads(rendered.read_text())
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = manager["typed_config"]["http_filters"]
    manager["typed_config"]["http_filters"] = [
        f for f in filters if f["name"] != "envoy.filters.http.ext_proc"
    ]
    rendered.write_text(json.dumps(config))
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    admin = config["admin"]["address"]["socket_address"]["port_value"]
    envoy = EnvoyProcess(rendered, admin_port=admin, log_path=tmp_path / "envoy.log")
    envoy.start()
    try:
        bare = Gateway.__new__(Gateway)
        bare.listener_port = listener["port_value"]
        alice = gateway.token("alice", groups=("ml-eu",))
        reply = Gateway.request(
            bare, token=alice, source=SWEDEN,
            body={"model": "finetune-eu-1", "messages": [{"role": "user", "content": "job 4"}]},
        )  # fmt: skip
        assert reply.status == 401  # the model refuses a request without the gateway's key
        assert gateway.model.requests() == []
        assert gateway.model.refused >= 1
    finally:
        envoy.stop()


def test_a_model_name_that_is_padded_or_holds_personal_data_is_refused_and_never_recorded(
    gateway: Gateway,
) -> None:
    """The body's ``model`` is the caller's text: one over the bound, or holding what masking
    hides, is refused by authz before any rule, and no chain, log or approval holds it raw."""
    alice = gateway.token("alice", groups=("ml-eu",))
    raw_values = ("zoe.pii@example.com", "4111 1111 1111 1111", "A" * 300, "B" * 300)
    models = (
        "finetune-zoe.pii@example.com",  # a fine-tune rule would hold it for an approver
        "demo-" + "B" * 200_000 + " card 4111 1111 1111 1111",  # a demo model: allowed
        "gpt-x-" + "A" * 200_000,  # no rule allows it: denied
    )
    request_ids = []
    for model in models:
        reply = gateway.request(token=alice, source=SWEDEN, body={"model": model, "messages": []})
        assert reply.status == 403, reply.body
        answer = reply.json()
        assert answer["error"] == "model_name_refused"
        request_ids.append(answer["request_id"])
    assert "zoe" not in approvals(gateway, alice, "list", "--json").stdout  # nothing held

    def recorded() -> list[dict[str, Any]]:
        events = read_events([gateway.root / "audit"])
        return [event for event in events if event.get("request_id") in request_ids]

    assert gateway.wait_until(lambda: len(recorded()) >= len(models), timeout=10)
    for event in recorded():
        assert event["error"] == "model_name_refused"
        assert len(event["model"]) <= 264
    time.sleep(0.5)
    leaked = [
        (str(path.relative_to(gateway.root)), value[:20])
        for path in gateway.root.rglob("*")
        if path.is_file() and path.suffix != ".mmdb"
        for value in raw_values
        if value.encode() in path.read_bytes()
    ]
    assert leaked == []
