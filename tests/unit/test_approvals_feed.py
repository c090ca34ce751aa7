"""The approvals service's background work: every change of the store reaches the audit trail
(without the justification) and the webhooks, once, and the sweep expires what ran out."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from extproc.approval.config import ApprovalsSettings, WebhookSettings
from extproc.approval.model import Person
from extproc.approval.notice import verify_signature
from extproc.approval.policy import ApprovalPolicy
from extproc.approvals.feed import CONSUMER, expire_due, publish_changes, run_background
from extproc.audit.read import read_events
from extproc.audit.verify import collect
from extproc.demo.http import start_server, stop_server
from extproc.demo.issuer import DevIssuer
from tests.support.approvals import approvals_server, held_request

SECRET = b"w" * 40
SAM = Person("sam", "demo", ("security",))
LEE = Person("lee", "demo", ("ml-leads",))


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    dev = DevIssuer(tmp_path / "issuer")
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]], threading.Event]]:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            arrived.set()
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = start_server("127.0.0.1", 0, Handler)
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, arrived
    stop_server(server)


def test_every_change_is_audited_in_order_and_notified_once(
    tmp_path: Path, issuer: DevIssuer, inbox: Any
) -> None:
    url, received, _arrived = inbox
    settings = ApprovalsSettings(
        store_path=tmp_path / "state" / "approvals.db",
        webhooks=(WebhookSettings(url, secret=SECRET),),
    )
    with approvals_server(tmp_path, issuer, settings) as server:
        runtime = server.runtime
        store = runtime.store
        approval = store.create(held_request()).approval
        store.review(approval.id, SAM, "approve", reason=None, ttl_seconds=None, now=time.time())
        store.review(approval.id, LEE, "approve", reason="ok", ttl_seconds=None, now=time.time())
        assert publish_changes(runtime) == 4
        assert publish_changes(runtime) == 0  # the cursor moved: nothing twice
        assert store.cursor(CONSUMER) == store.version()
        deadline = time.monotonic() + 10
        while len(received) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    kinds = [json.loads(body)["event"] for _headers, body in received]
    assert sorted(kinds) == ["granted", "requested", "reviewed", "reviewed"]
    for headers, body in received:
        assert verify_signature(headers["x-extproc-signature"], body, SECRET, now=time.time())
    events = [e for e in read_events([tmp_path / "audit"]) if e.get("approval_event")]
    assert [e["approval_event"] for e in events] == ["requested", "reviewed", "reviewed", "granted"]
    assert {e["chain"] for e in events} == {"approvals-0"}
    assert all(e["approval_id"] == approval.id for e in events)
    assert all("nightly eval" not in json.dumps(e) for e in events)
    assert events[0]["justification_bytes"] == len("nightly eval")
    _chains, errors = collect([tmp_path / "audit"])
    assert errors == []


def test_the_sweep_expires_pending_requests_and_the_feed_records_it(
    tmp_path: Path, issuer: DevIssuer
) -> None:
    short = ApprovalPolicy(approver_groups=("security",), any_of=1, pending_ttl_seconds=0.2)
    with approvals_server(tmp_path, issuer) as server:
        runtime = server.runtime
        approval = runtime.store.create(held_request(policy=short)).approval
        assert expire_due(runtime) == 0
        time.sleep(0.3)
        assert expire_due(runtime) == 1
        assert runtime.store.get(approval.id).status == "expired"
        assert publish_changes(runtime) == 2
    events = [e for e in read_events([tmp_path / "audit"]) if e.get("approval_event")]
    assert [e["approval_event"] for e in events] == ["requested", "expired"]


def test_the_background_task_sweeps_and_publishes_until_cancelled(
    tmp_path: Path, issuer: DevIssuer
) -> None:
    short = ApprovalPolicy(approver_groups=("security",), any_of=1, pending_ttl_seconds=0.1)
    with approvals_server(tmp_path, issuer) as server:
        runtime = server.runtime
        approval = runtime.store.create(held_request(policy=short)).approval
        task = server.run(_start(run_background(server.holder)))
        deadline = time.monotonic() + 10
        while runtime.store.cursor(CONSUMER) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.run(_cancel(task))
        assert runtime.store.get(approval.id).status == "expired"
        assert runtime.store.cursor(CONSUMER) == 2


async def _start(coroutine: Any) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coroutine)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
