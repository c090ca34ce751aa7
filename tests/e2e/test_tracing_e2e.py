"""Tracing through the real Envoy: Envoy traces with its OpenTelemetry tracer, authz and the
processor export their spans, all to one real OTLP collector. A client's traceparent starts the
trace; Envoy's span of each gRPC call is the parent of extproc's span of it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from ruamel.yaml import YAML

from extproc.demo.up import shipped_envoy_config
from extproc.envoy_runner import validate_config
from tests.e2e.conftest import e2e_config, geoip_database
from tests.e2e.harness import Gateway
from tests.support.otlp import Collector, ExportedSpan

pytestmark = pytest.mark.e2e

CHECK = "envoy.service.auth.v3.Authorization/Check"
PROCESS = "envoy.service.ext_proc.v3.ExternalProcessor/Process"
SWEDEN = "89.160.20.112"
UNITED_STATES = "216.160.83.56"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
DOC = Path(__file__).resolve().parents[2] / "docs" / "tracing.md"


def documented_envoy_tracing() -> tuple[dict[str, Any], dict[str, Any]]:
    """The connection manager's ``tracing`` block and the collector's cluster, exactly as
    docs/tracing.md shows them to SREs."""
    doc = DOC.read_text(encoding="utf-8")
    start = doc.index("```\n          tracing:") + len("```\n")
    block = doc[start : doc.index("```", start)]
    tracing_part, cluster_part = block.split("\n  clusters:\n")
    yaml = YAML(typ="safe")
    return yaml.load(tracing_part)["tracing"], yaml.load(cluster_part)[0]


def traced_envoy_template(root: Path, collector: Collector) -> Path:
    """The demo Envoy config plus the documented tracing, every request sampled and the
    collector on its test address."""
    tracing, cluster = documented_envoy_tracing()
    tracing["random_sampling"] = {"value": 100}
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    address["socket_address"] = {"address": "127.0.0.1", "port_value": collector.port}
    yaml = YAML(typ="safe")
    config: Any = yaml.load(shipped_envoy_config("demo.yaml").read_text(encoding="utf-8"))
    resources = config["static_resources"]
    (listener,) = [item for item in resources["listeners"] if item["name"] == "inference"]
    listener["filter_chains"][0]["filters"][0]["typed_config"]["tracing"] = tracing
    resources["clusters"].append(cluster)
    path = root / "envoy-traced-template.yaml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(config, out)
    return path


def test_the_documented_envoy_tracing_is_valid_in_the_production_config(tmp_path: Path) -> None:
    tracing, cluster = documented_envoy_tracing()
    yaml = YAML(typ="safe")
    config: Any = yaml.load(shipped_envoy_config("envoy.yaml").read_text(encoding="utf-8"))
    resources = config["static_resources"]
    for listener in resources["listeners"]:
        for network_filter in listener["filter_chains"][0]["filters"]:
            if network_filter["name"] == "envoy.filters.network.http_connection_manager":
                network_filter["typed_config"]["tracing"] = tracing
    resources["clusters"].append(cluster)
    path = tmp_path / "envoy.yaml"
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(config, out)
    validate_config(path)  # envoy --mode validate


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Collector]]:
    root = tmp_path_factory.mktemp("traced")
    collector = Collector().start()
    config = e2e_config(geoip_database(root)) + (
        f"tracing:\n  enabled: true\n  endpoint: {collector.endpoint}\n"
    )
    gateway = Gateway(
        root, config_text=config, envoy_template=traced_envoy_template(root, collector)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(os.environ, "OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s
        try:
            gateway.start()
            yield gateway, collector
        finally:
            gateway.stop()
            collector.stop()


def trace_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


def spans_of(collector: Collector, trace_id: str, name: str) -> list[ExportedSpan]:
    return collector.wait_for(lambda span: span.trace_id == trace_id and span.name == name)


def ancestors(collector: Collector, span: ExportedSpan) -> list[str]:
    """The span ids from ``span``'s parent up to the root, as far as the collector has them."""
    by_id = {item.span_id: item for item in collector.spans() if item.trace_id == span.trace_id}
    chain, parent = [], span.parent_id
    while parent:
        chain.append(parent)
        parent = by_id[parent].parent_id if parent in by_id else ""
    return chain


def assert_descends_from(collector: Collector, span: ExportedSpan, ancestor: str) -> None:
    """Envoy exports its spans in batches: wait until the chain up to ``ancestor`` is there."""
    found = collector.wait_for(lambda _: ancestor in ancestors(collector, span), timeout=15)
    assert found, f"{span.name}: {ancestor} is not an ancestor: {ancestors(collector, span)}"


def test_an_allowed_request_is_one_trace_from_the_client_through_envoy_to_authz_and_processor(
    traced: tuple[Gateway, Collector],
) -> None:
    gateway, collector = traced
    client_span = "1111111111111111"
    traceparent = f"00-4bf92f3577b34da6a3ce929d0e0e4736-{client_span}-01"
    token = gateway.token("alice", groups=("ml-eu",))
    body = {
        "model": "demo-echo",
        "messages": [{"role": "user", "content": f"card {CARD}, mail {EMAIL}"}],
    }
    reply = gateway.request(
        token=token, source=SWEDEN, body=body, headers={"traceparent": traceparent}
    )
    assert reply.status == 200, reply.body
    trace_id = trace_of(traceparent)
    (check,) = spans_of(collector, trace_id, CHECK)
    (process,) = spans_of(collector, trace_id, PROCESS)
    for span, service in ((check, "extproc-authz"), (process, "extproc-processor")):
        assert span.service == service
        assert span.span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert span.attributes["rpc.system.name"] == "grpc"
        assert span.span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
        # The parent is Envoy's span of the gRPC call, a descendant of the client's span.
        assert span.parent_id != client_span
        assert_descends_from(collector, span, client_span)
        (parent,) = [item for item in collector.spans() if item.span_id == span.parent_id]
        assert parent.service == "envoy"
    assert check.attributes["rpc.status_code"] == "OK"
    # Envoy may reset an ext_proc stream once it has every answer it needs: the server sees a
    # cancellation, which is not a server error (no error.type, status unset).
    assert process.attributes["rpc.status_code"] in ("OK", "CANCELLED")
    assert "error.type" not in process.attributes
    assert check.attributes["extproc.outcome"] == "allowed"
    assert check.attributes["extproc.rule"] == "eu-team-to-eu"
    assert process.attributes["extproc.outcome"] == "allowed"
    assert process.attributes["extproc.findings.request.CARD"] == 1
    assert process.attributes["extproc.findings.request.EMAIL"] == 1
    exported = collector.exported_bytes()
    for secret in (token, "alice", CARD, "4111", EMAIL, SWEDEN, "gateway-only-model-key"):
        assert secret.encode() not in exported, secret


def test_a_denied_request_has_its_rule_and_error_code_on_the_check_span(
    traced: tuple[Gateway, Collector],
) -> None:
    gateway, collector = traced
    traceparent = "00-5bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01"
    token = gateway.token("bob", groups=("ml-eu",))
    reply = gateway.request(token=token, source=UNITED_STATES, headers={"traceparent": traceparent})
    assert reply.status == 403
    answer = reply.json()
    (check,) = spans_of(collector, trace_of(traceparent), CHECK)
    assert check.attributes["extproc.outcome"] == "denied"
    assert check.attributes["extproc.effect"] == "deny"
    assert check.attributes["extproc.rule"] == answer["rule"] == "source-region-not-allowed"
    assert check.attributes["extproc.error_code"] == answer["error"]
    assert check.attributes["extproc.http_status"] == 403
    assert check.attributes["extproc.source_region"] == "us"
    assert token.encode() not in collector.exported_bytes()
    assert b"bob" not in collector.exported_bytes()
