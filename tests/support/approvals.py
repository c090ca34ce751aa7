"""An approvals service in-process for tests: a config with a development issuer, a store in a
temporary directory, and the real servicer on a grpc.aio server in a thread of its own."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from extproc.app import build_approvals
from extproc.approval.config import ApprovalsSettings
from extproc.approval.ids import new_approval_id, request_digest, scope_key
from extproc.approval.model import Approval, Target
from extproc.approval.policy import ApprovalPolicy
from extproc.approval.rules import open_approval
from extproc.approvals.api import approvals_pb2_grpc
from extproc.approvals.api.service import ApprovalsService
from extproc.approvals.runtime import ApprovalsRuntime
from extproc.audit.sink import AuditSinks
from extproc.decision import Decision
from extproc.demo.issuer import DevIssuer
from extproc.geo.writer import write_demo_database
from extproc.reload import RuntimeHolder
from extproc.settings import load_config

CONFIG = """\
version: 1
identity:
  issuers:
    - {{name: demo, issuer: "{issuer}", jwks_file: jwks.json,
       audiences: [api], algorithms: [RS256]}}
geo:
  database: demo.mmdb
  regions: {{eu: [DE], us: [US]}}
policy:
  rules: []
audit:
  directory: audit
  key_env: TEST_AUDIT_KEY
"""
AUDIT_KEY = "a" * 48
POLICY = ApprovalPolicy(
    approver_groups=("security", "ml-leads"),
    thresholds=(("ml-leads", 1), ("security", 1)),
    max_grant_ttl_seconds=7200,
)


def write_config(directory: Path, issuer: DevIssuer) -> Path:
    (directory / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    write_demo_database(directory / "demo.mmdb")
    path = directory / "config.yaml"
    path.write_text(CONFIG.format(issuer=issuer.issuer_url))
    return path


def held_request(
    subject: str = "alice",
    policy: ApprovalPolicy = POLICY,
    now: float = 0.0,
    path: str = "/v1/chat",
) -> Approval:
    """A pending approval as authz opens it for a request ``require_approval`` holds."""
    now = now or time.time()
    decision = Decision(
        decision_id="d-1",
        request_id="r-1",
        effect="require_approval",
        rule="big-models",
        reason="large models need an approval",
        status=403,
        subject=subject,
        issuer="demo",
        groups=("ml-eu",),
        target_region="eu",
        model="gpt-big",
    )
    digest = request_digest("POST", path, "gpt-big", b'{"model":"gpt-big"}')
    key = scope_key(
        policy.scope, rule="big-models", issuer="demo", route="chat", model="gpt-big",
        request_digest=digest,
    )  # fmt: skip
    target = Target("POST", path, "chat", "gpt-big", "eu", digest, key)
    return open_approval(
        decision,
        policy,
        approval_id=new_approval_id(),
        target=target,
        justification="nightly eval",
        now=now,
    )


@dataclass
class ApprovalsServer:
    runtime: ApprovalsRuntime
    holder: RuntimeHolder[Any]
    port: int
    loop: asyncio.AbstractEventLoop

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run ``coroutine`` on the server's loop from a test thread."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)


@contextmanager
def approvals_server(
    directory: Path, issuer: DevIssuer, settings: ApprovalsSettings | None = None
) -> Iterator[ApprovalsServer]:
    os.environ.setdefault("TEST_AUDIT_KEY", AUDIT_KEY)
    config = load_config(write_config(directory, issuer))
    sinks = AuditSinks()
    settings = settings or ApprovalsSettings(store_path=directory / "state" / "approvals.db")
    settings = replace(settings, poll_interval_seconds=min(settings.poll_interval_seconds, 0.05))
    runtime = build_approvals(config, sinks=sinks, settings=settings)
    holder: RuntimeHolder[Any] = RuntimeHolder(runtime, lambda: runtime)
    loop = asyncio.new_event_loop()
    started: Future[int] = Future()
    stop = asyncio.Event()

    async def serve() -> None:
        server = grpc.aio.server()
        approvals_pb2_grpc.add_ApprovalsServicer_to_server(ApprovalsService(holder), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.set_result(port)
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    port = started.result(30)
    try:
        yield ApprovalsServer(runtime, holder, port, loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        runtime.close()
        sinks.close_all()
