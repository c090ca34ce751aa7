"""`extproc serve approvals` as an operator runs it: the worker machinery (health, logs) around
the Approvals API, the store beside the config, the background feed into the audit trail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from extproc.approval.model import Person
from extproc.approvals.api import approvals_pb2 as pb
from extproc.approvals.api import approvals_pb2_grpc
from extproc.approvals.sqlite import SqliteApprovalStore
from extproc.audit.read import read_events
from extproc.demo.issuer import DevIssuer
from extproc.demo.up import wait_for_grpc_health
from extproc.envoy_runner import free_port
from tests.support.approvals import AUDIT_KEY, held_request, write_config


def test_serve_approvals_answers_reviews_and_audits_them(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "issuer")
    issuer.start()
    config = write_config(tmp_path, issuer)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "extproc", "serve", "approvals", "--config", str(config),
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TEST_AUDIT_KEY=AUDIT_KEY),
    )  # fmt: skip
    try:
        wait_for_grpc_health(port, timeout=60, process=process)
        store = SqliteApprovalStore(tmp_path / "approvals.db")  # beside the config: the default
        approval = store.create(held_request()).approval
        token = issuer.mint("sam", ["security"], audience="api")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = approvals_pb2_grpc.ApprovalsStub(channel)
            reviewed = stub.Approve(
                pb.ApproveRequest(id=approval.id),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        assert reviewed.status == "pending"  # the policy wants security and ml-leads
        store.review(
            approval.id, Person("lee", "demo", ("ml-leads",)), "approve",
            reason=None, ttl_seconds=None, now=time.time(),
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while store.cursor("approvals-service") != store.version() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.cursor("approvals-service") == store.version() == 4
        store.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        log.close()
        issuer.stop()
    kinds = [
        e["approval_event"] for e in read_events([tmp_path / "audit"]) if "approval_event" in e
    ]
    assert kinds == ["requested", "reviewed", "reviewed", "granted"]
    logged = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines()]
    assert any(e.get("msg") == "serving" and e.get("service") == "approvals" for e in logged)
