"""The Authorization servicer in-process, called by a real gRPC client with real protobufs."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import address_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from extproc.app import build_authz
from extproc.audit.event import build_event
from extproc.authz.mapping import request_view
from extproc.authz.service import AuthorizationService, add_to_server
from extproc.decide.answer import Answer
from extproc.decision import (
    MAX_MODEL_CHARS,
    MAX_RECORDED_MODEL_CHARS,
    MODEL_CUT_MARKER,
    DryRunHit,
    to_metadata,
)
from extproc.demo.issuer import DevIssuer
from extproc.geo.writer import write_demo_database
from extproc.reload import RuntimeHolder
from extproc.runtime import AuthzRuntime
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
  rules:
    - name: shadow-deny-us
      when: {{source_region: us}}
      effect: deny
      enforce: false
    - name: admin-paths-need-approval
      when: {{path: "/admin/*"}}
      effect: require_approval
      reason: admin paths need a human approval
      approval: {{approver_groups: [security], any_of: 1}}
    - name: allow-known-regions
      when: {{source_region: [eu, us]}}
      effect: allow
upstreams:
  credentials:
    model: {{env: TEST_MODEL_KEY, header: x-upstream-key, prefix: ""}}
"""


@pytest.fixture
def runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AuthzRuntime, DevIssuer]]:
    monkeypatch.setenv("TEST_MODEL_KEY", "s3cret-upstream")
    issuer = DevIssuer(tmp_path / "issuer")
    issuer.start()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    write_demo_database(tmp_path / "demo.mmdb")
    (tmp_path / "config.yaml").write_text(CONFIG.format(issuer=issuer.issuer_url))
    runtime = build_authz(load_config(tmp_path / "config.yaml"))
    yield runtime, issuer
    runtime.close()
    issuer.stop()


def check(
    token: str | None, source: str, path: str = "/v1/chat", **extensions: str
) -> external_auth_pb2.CheckRequest:
    headers = {"x-request-id": "rid-1", "x-extproc-client-address": source, "x-api-key": "k"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address="127.0.0.1")
                )
            ),
            request=attribute_context_pb2.AttributeContext.Request(
                http=attribute_context_pb2.AttributeContext.HttpRequest(
                    id="1", method="POST", path=path, host="gw", headers=headers
                )
            ),
            context_extensions={"upstream_credential": "model", **extensions},
        )
    )


async def _served_check(
    runtime: AuthzRuntime, request: external_auth_pb2.CheckRequest
) -> external_auth_pb2.CheckResponse:
    server = grpc.aio.server()
    add_to_server(AuthorizationService(RuntimeHolder(runtime, lambda: runtime)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            response: external_auth_pb2.CheckResponse = await stub.Check(request)
            return response
    finally:
        await server.stop(None)


def test_an_allowed_check_injects_the_upstream_credential_and_strips_caller_keys(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    token = runtime[1].mint("alice", audience="api")
    response = asyncio.run(_served_check(runtime[0], check(token, "192.0.2.10")))
    assert response.status.code == code_pb2.OK
    headers = {h.header.key: h.header.value for h in response.ok_response.headers}
    assert headers["x-upstream-key"] == "s3cret-upstream"
    assert set(response.ok_response.headers_to_remove) == {"authorization", "x-api-key"}
    assert response.dynamic_metadata["rule"] == "allow-known-regions"
    assert response.dynamic_metadata["source_country"] == "DE"


def test_a_claim_that_cannot_travel_as_utf8_is_a_clear_internal_error_not_an_rpc_failure(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    token = runtime[1].mint("\ud800alice", audience="api")  # JSON allows a lone surrogate
    response = asyncio.run(_served_check(runtime[0], check(token, "192.0.2.10")))
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == 500
    assert json.loads(response.denied_response.body)["error"] == "internal_error"


def decide(runtime: AuthzRuntime, request: external_auth_pb2.CheckRequest) -> Answer:
    return runtime.authorizer.decide(request_view(request))


def test_a_dry_run_rule_is_recorded_in_the_metadata_while_the_request_goes_on(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    answer = decide(authz, check(issuer.mint("bob", audience="api"), "198.51.100.7"))
    assert answer.allowed
    assert answer.decision.dry_run == (
        DryRunHit("shadow-deny-us", "deny", "deny by rule shadow-deny-us"),
    )
    assert answer.decision.outcome == "allowed"


def test_require_approval_goes_on_to_the_processor_without_the_upstream_credential(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    answer = decide(authz, check(issuer.mint("bob", audience="api"), "192.0.2.10", "/admin/x"))
    assert answer.allowed  # to the processor, which holds it
    assert answer.decision.outcome == "held"
    assert answer.decision.awaits_approval
    assert answer.decision.obligations.upstream_credential == "model"
    injected = dict(answer.set_headers)
    assert "x-upstream-key" not in injected  # withheld until an approver releases it
    assert set(answer.remove_headers) == {"authorization", "x-api-key"}


def test_a_route_naming_an_unknown_credential_is_denied_not_forwarded_bare(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10", upstream_credential="nope")
    answer = decide(authz, request)
    assert (answer.allowed, answer.status, answer.error) == (
        False,
        503,
        "upstream_credential_unavailable",
    )


def with_body(request: external_auth_pb2.CheckRequest, body: bytes, **headers: str) -> None:
    http = request.attributes.request.http
    http.raw_body = body
    http.headers.update({"content-type": "application/json", **headers})


def sdk_body(model: str, size: int = 16) -> bytes:
    """As the OpenAI SDK writes it: ``model`` after the messages."""
    content = "x" * size
    return json.dumps({"messages": [{"role": "user", "content": content}], "model": model}).encode()


def test_the_model_is_read_from_the_whole_body_however_large(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10")
    with_body(request, sdk_body("late-model", 3 << 20))
    assert decide(authz, request).decision.model == "late-model"


def test_the_model_of_a_compressed_body_is_read_after_its_coding(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10")
    with_body(request, gzip.compress(sdk_body("zipped")), **{"content-encoding": "gzip"})
    assert decide(authz, request).decision.model == "zipped"
    with_body(request, b"not gzip at all", **{"content-encoding": "gzip"})
    assert decide(authz, request).decision.model == ""


def test_a_body_envoy_sent_only_part_of_names_no_model(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    """A part could end before a later ``model``, or hold an earlier one the rest overrides."""
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10")
    with_body(request, b'{"model": "seen"}', **{"x-envoy-auth-partial-body": "true"})
    assert decide(authz, request).decision.model == ""
    with_body(request, b'{"model": "seen"}', **{"x-envoy-auth-partial-body": "false"})
    assert decide(authz, request).decision.model == "seen"


def test_a_route_that_pins_the_model_decides_on_the_routes_model(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10", model="pinned")
    with_body(request, sdk_body("other"))
    assert decide(authz, request).decision.model == "pinned"  # the processor refuses "other"


MASKING = """\
masking:
  key_env: TEST_MASKING_KEY
  default_profile: standard
  profiles:
    standard:
      actions: {default: redact, email: tokenize}
"""
CARD = "4111 1111 1111 1111"


@pytest.fixture
def masked_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AuthzRuntime, DevIssuer]]:
    """The runtime of a deployment that masks (a ``masking`` section)."""
    monkeypatch.setenv("TEST_MODEL_KEY", "s3cret-upstream")
    monkeypatch.setenv("TEST_MASKING_KEY", "m" * 40)
    issuer = DevIssuer(tmp_path / "issuer")
    issuer.start()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    write_demo_database(tmp_path / "demo.mmdb")
    config = CONFIG.format(issuer=issuer.issuer_url) + MASKING
    (tmp_path / "config.yaml").write_text(config)
    runtime = build_authz(load_config(tmp_path / "config.yaml"))
    yield runtime, issuer
    runtime.close()
    issuer.stop()


def _recorded(answer: Answer) -> str:
    """Everything authz lets the model name reach: its metadata and its audit event."""
    decision = answer.decision
    event = build_event(service="authz", time="t", decision=decision, method="POST", path="/")
    return json.dumps([to_metadata(decision), event])


@pytest.mark.parametrize(
    ("model", "path"),
    [
        pytest.param("demo-" + "B" * 200_000 + f" card {CARD}", "/v1/chat", id="long-allowed"),
        pytest.param("gpt-x-" + "A" * 200_000, "/v1/chat", id="long"),
        pytest.param("finetune-zoe.pii@example.com", "/admin/x", id="e-mail-held"),
        pytest.param(f"demo card {CARD}", "/v1/chat", id="card"),
    ],
)
def test_a_model_name_too_long_or_holding_what_masking_hides_is_refused_and_recorded_masked(
    masked_runtime: tuple[AuthzRuntime, DevIssuer], model: str, path: str
) -> None:
    authz, issuer = masked_runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10", path)
    with_body(request, sdk_body(model))
    answer = decide(authz, request)
    assert (answer.allowed, answer.status, answer.error) == (False, 403, "model_name_refused")
    assert answer.decision.rule == "model_name_refused"
    recorded = answer.decision.model
    assert len(recorded) <= MAX_RECORDED_MODEL_CHARS
    assert recorded.endswith(MODEL_CUT_MARKER) == (len(model) > MAX_MODEL_CHARS)
    everything = _recorded(answer)
    for secret in (CARD, "zoe.pii@example.com", "A" * 300, "B" * 300):
        assert secret not in everything
    assert len(everything) < 4096


def test_a_model_name_within_the_bound_that_masking_leaves_alone_is_decided_on_as_it_is(
    masked_runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = masked_runtime
    token = issuer.mint("bob", audience="api")
    names = (
        "ft:gpt-4o-mini-2024-07-18:org-abc123:sup:AbCdEf12",
        "m" * MAX_MODEL_CHARS,
        "resnet50-1.2.3.4",  # a version, not an address
        "my-model-1.0.0.0",
    )
    for model in names:
        request = check(token, "192.0.2.10")
        with_body(request, sdk_body(model))
        answer = decide(authz, request)
        assert answer.allowed, answer.decision.reason
        assert answer.decision.model == model  # the processor compares the body's with it


def test_without_masking_a_long_model_name_is_still_refused_and_recorded_cut(
    runtime: tuple[AuthzRuntime, DevIssuer],
) -> None:
    authz, issuer = runtime
    request = check(issuer.mint("bob", audience="api"), "192.0.2.10")
    with_body(request, sdk_body("x" * (MAX_MODEL_CHARS + 1)))
    answer = decide(authz, request)
    assert (answer.status, answer.error) == (403, "model_name_refused")
    assert answer.decision.model == "x" * MAX_MODEL_CHARS + MODEL_CUT_MARKER
