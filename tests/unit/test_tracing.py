"""Tracing: the config section, and real spans of the real servicers exported over OTLP/gRPC to a
real collector (``tests.support.otlp``), read back from the bytes it received."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from opentelemetry.proto.trace.v1 import trace_pb2

from extproc.app import build_authz, build_processor
from extproc.audit.sink import AuditSinks
from extproc.authz.service import AuthorizationService, add_to_server
from extproc.decision import to_metadata
from extproc.demo.issuer import DevIssuer
from extproc.envoy_runner import free_port
from extproc.errors import ConfigError
from extproc.geo.writer import write_demo_database
from extproc.processor.service import ExternalProcessorService
from extproc.reload import RuntimeHolder
from extproc.settings import load_config, parse_config
from extproc.tracing.otel import SEMCONV_VERSION, Tracing, start_tracing
from extproc.tracing.settings import DEFAULT_ENDPOINT, TracingConfig
from tests.support.otlp import Collector, ExportedSpan
from tests.unit import test_authz_service as authz_case
from tests.unit import test_processor_service as processor_case

CHECK = "envoy.service.auth.v3.Authorization/Check"
PROCESS = "envoy.service.ext_proc.v3.ExternalProcessor/Process"
TRACE = "0af7651916cd43dd8448eb211c80319c"
CALL_PARENT = "b7ad6b7169203331"  # Envoy's client span of the gRPC call
CLIENT_PARENT = "00f067aa0ba902b7"  # the HTTP client's span
CALL_TRACEPARENT = f"00-{TRACE}-{CALL_PARENT}-01"
CLIENT_TRACEPARENT = f"00-{TRACE}-{CLIENT_PARENT}-01"
SERVER = trace_pb2.Span.SPAN_KIND_SERVER


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector().start()
    yield collector
    collector.stop()


def tracing_to(collector: Collector, service: str) -> Tracing:
    return start_tracing(TracingConfig(enabled=True, endpoint=collector.endpoint), service, 0)


# -- authz ----------------------------------------------------------------------------------------


@pytest.fixture
def authz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, DevIssuer]]:
    monkeypatch.setenv("TEST_MODEL_KEY", "s3cret-upstream")
    issuer = DevIssuer(tmp_path / "issuer")
    issuer.start()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": issuer.published}))
    write_demo_database(tmp_path / "demo.mmdb")
    (tmp_path / "config.yaml").write_text(authz_case.CONFIG.format(issuer=issuer.issuer_url))
    runtime = build_authz(load_config(tmp_path / "config.yaml"))
    yield runtime, issuer
    runtime.close()
    issuer.stop()


def run_checks(
    runtime: Any, tracing: Tracing, calls: list[tuple[external_auth_pb2.CheckRequest, Any]]
) -> list[external_auth_pb2.CheckResponse]:
    """Each (request, gRPC metadata) through a real server with the tracing interceptor; then a
    health check, which must leave no span."""

    async def scenario() -> list[external_auth_pb2.CheckResponse]:
        server = grpc.aio.server(interceptors=(tracing.interceptor,))
        holder = RuntimeHolder(runtime, lambda: runtime)
        add_to_server(AuthorizationService(holder), server)
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = external_auth_pb2_grpc.AuthorizationStub(channel)
                responses = [await stub.Check(request, metadata=meta) for request, meta in calls]
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
                return responses
        finally:
            await server.stop(None)

    responses = asyncio.run(scenario())
    tracing.shutdown()  # flushes the batch: every span is at the collector now
    return responses


def with_client_traceparent(request: external_auth_pb2.CheckRequest) -> Any:
    request.attributes.request.http.headers["traceparent"] = CLIENT_TRACEPARENT
    return request


def test_a_check_is_a_server_span_named_and_attributed_by_the_rpc_conventions(
    authz: tuple[Any, DevIssuer], collector: Collector
) -> None:
    runtime, issuer = authz
    token = issuer.mint("alice", audience="api")
    request = with_client_traceparent(authz_case.check(token, "192.0.2.10"))
    run_checks(
        runtime, tracing_to(collector, "authz"), [(request, (("traceparent", CALL_TRACEPARENT),))]
    )
    (span,) = collector.spans()
    assert span.service == "extproc-authz"
    assert span.name == CHECK
    assert span.span.kind == SERVER
    # The call's own context wins over the HTTP request's: Envoy's span of this call is the parent.
    assert (span.trace_id, span.parent_id) == (TRACE, CALL_PARENT)
    attributes = span.attributes
    assert attributes["rpc.system.name"] == "grpc"
    assert attributes["rpc.method"] == CHECK
    assert attributes["rpc.status_code"] == "OK"
    assert attributes["network.peer.address"] == "127.0.0.1"
    assert isinstance(attributes["network.peer.port"], int)
    assert "error.type" not in attributes
    assert span.span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert attributes["extproc.effect"] == "allow"
    assert attributes["extproc.outcome"] == "allowed"
    assert attributes["extproc.rule"] == "allow-known-regions"
    assert attributes["extproc.source_region"] == "eu"
    assert "extproc.error_code" not in attributes
    request_spans = collector.exported_bytes()
    assert f"schemas/{SEMCONV_VERSION}".encode() in request_spans


def test_without_call_metadata_the_http_requests_traceparent_is_the_parent(
    authz: tuple[Any, DevIssuer], collector: Collector
) -> None:
    runtime, issuer = authz
    request = with_client_traceparent(
        authz_case.check(issuer.mint("alice", audience="api"), "192.0.2.10")
    )
    plain = authz_case.check(issuer.mint("alice", audience="api"), "192.0.2.10")
    run_checks(runtime, tracing_to(collector, "authz"), [(request, None), (plain, None)])
    parented, rooted = collector.spans()
    assert (parented.trace_id, parented.parent_id) == (TRACE, CLIENT_PARENT)
    assert rooted.trace_id != TRACE
    assert rooted.parent_id == ""


def test_a_denial_carries_its_rule_and_error_code_and_no_secret_is_exported(
    authz: tuple[Any, DevIssuer], collector: Collector
) -> None:
    runtime, issuer = authz
    token = issuer.mint("alice-the-subject", audience="api")
    denied = authz_case.check(token, "203.0.113.7", path="/v1/chat?email=jane.doe@example.com")
    unauthenticated = authz_case.check(None, "192.0.2.10")
    responses = run_checks(
        runtime, tracing_to(collector, "authz"), [(denied, None), (unauthenticated, None)]
    )
    assert all(response.denied_response.status.code for response in responses)
    by_error = {span.attributes["extproc.error_code"]: span for span in collector.spans()}
    assert set(by_error) == {"forbidden", "missing_token"}
    policy = by_error["forbidden"].attributes
    assert (policy["extproc.effect"], policy["extproc.outcome"]) == ("deny", "denied")
    assert policy["extproc.rule"] == "default"
    assert policy["extproc.http_status"] == 403
    assert by_error["missing_token"].attributes["extproc.http_status"] == 401
    exported = collector.exported_bytes()
    for secret in (token, token.split(".")[1], "alice-the-subject", "203.0.113.7", "jane.doe",
                   "s3cret-upstream", "Bearer"):  # fmt: skip
        assert secret.encode() not in exported, secret


# -- processor ------------------------------------------------------------------------------------


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "config.yaml").write_text(processor_case.CONFIG)
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    (tmp_path / "masking.key").write_bytes(b"m" * 32)
    (tmp_path / "audit.key").write_bytes(b"a" * 32)
    write_demo_database(tmp_path / "demo.mmdb")
    sinks = AuditSinks()
    yield build_processor(load_config(tmp_path / "config.yaml"), sinks=sinks)
    sinks.close_all()


def test_a_process_stream_is_one_span_with_findings_counted_never_quoted(
    processor: Any, collector: Collector
) -> None:
    messages = processor_case.exchange_messages(to_metadata(processor_case.ALLOWED))
    messages[0].request_headers.headers.headers.add(
        key="traceparent", raw_value=CLIENT_TRACEPARENT.encode()
    )
    tracing = tracing_to(collector, "processor")

    async def scenario() -> None:
        server = grpc.aio.server(interceptors=(tracing.interceptor,))
        holder = RuntimeHolder(processor, lambda: processor)
        external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
            ExternalProcessorService(holder), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
                responses = [r async for r in stub.Process(iter(messages))]
                assert len(responses) == 4
        finally:
            await server.stop(1)

    asyncio.run(scenario())
    tracing.shutdown()
    (span,) = collector.spans()
    assert (span.name, span.span.kind, span.service) == (PROCESS, SERVER, "extproc-processor")
    assert (span.trace_id, span.parent_id) == (TRACE, CLIENT_PARENT)
    attributes = span.attributes
    assert attributes["rpc.status_code"] == "OK"
    assert attributes["extproc.outcome"] == "allowed"
    assert attributes["extproc.rule"] == "eu-team"
    assert attributes["extproc.findings.request.CARD"] == 1
    assert attributes["extproc.findings.response.EMAIL"] == 1
    assert attributes["extproc.findings.total"] == 2
    exported = collector.exported_bytes()
    for value in (b"4111", b"jane@example.com", b"jane", b"/v1/chat", b"ml-eu"):
        assert value not in exported, value


# -- failures -------------------------------------------------------------------------------------


def test_an_escaped_exception_is_an_error_span_without_its_message(collector: Collector) -> None:
    tracing = tracing_to(collector, "approvals")

    async def boom(request: bytes, context: Any) -> bytes:
        raise RuntimeError("leaked value 4111 1111 1111 1111")

    async def scenario() -> grpc.StatusCode:
        server = grpc.aio.server(interceptors=(tracing.interceptor,))
        handler = grpc.unary_unary_rpc_method_handler(boom)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Failing", {"Boom": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    await channel.unary_unary("/test.Failing/Boom")(b"")
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                raise AssertionError("the call succeeded")
        finally:
            await server.stop(None)

    assert asyncio.run(scenario()) == grpc.StatusCode.UNKNOWN
    tracing.shutdown()
    (span,) = collector.spans()
    assert span.name == "test.Failing/Boom"
    assert span.attributes["rpc.status_code"] == "UNKNOWN"
    assert span.attributes["error.type"] == "UNKNOWN"
    assert span.span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert span.span.status.message == "RuntimeError"
    assert b"4111" not in collector.exported_bytes()


def test_a_server_stream_and_an_aborted_call_end_their_spans_with_their_status(
    collector: Collector,
) -> None:
    """The shapes of the approvals API: a server stream (Watch) and a refusal by abort, which
    is the caller's error (no error.type, status unset)."""
    tracing = tracing_to(collector, "approvals")

    async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for n in range(3):
            yield bytes([n])

    async def refuse(request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not an approver: alice")
        raise AssertionError("abort returned")

    async def scenario() -> tuple[list[bytes], grpc.StatusCode | None]:
        server = grpc.aio.server(interceptors=(tracing.interceptor,))
        handlers = {
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Refuse": grpc.unary_unary_rpc_method_handler(refuse),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Shapes", handlers),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                streamed = [item async for item in channel.unary_stream("/test.Shapes/Count")(b"")]
                try:
                    await channel.unary_unary("/test.Shapes/Refuse")(b"")
                except grpc.aio.AioRpcError as exc:
                    return streamed, exc.code()
                return streamed, None
        finally:
            await server.stop(None)

    streamed, refused = asyncio.run(scenario())
    assert streamed == [b"\x00", b"\x01", b"\x02"]
    assert refused == grpc.StatusCode.PERMISSION_DENIED
    tracing.shutdown()
    spans = {span.name: span for span in collector.spans()}
    assert spans["test.Shapes/Count"].attributes["rpc.status_code"] == "OK"
    denied = spans["test.Shapes/Refuse"]
    assert denied.attributes["rpc.status_code"] == "PERMISSION_DENIED"
    assert "error.type" not in denied.attributes
    assert denied.span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    assert b"alice" not in collector.exported_bytes()


# -- config ---------------------------------------------------------------------------------------

BASE = """\
version: 1
identity:
  issuers:
    - {name: demo, issuer: "https://issuer.example", jwks_file: jwks.json,
       audiences: [api], algorithms: [RS256]}
geo:
  database: demo.mmdb
  regions: {eu: [DE]}
policy:
  rules: []
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    write_demo_database(tmp_path / "demo.mmdb")
    return tmp_path


def parse(directory: Path, tracing: str) -> Any:
    path = directory / "config.yaml"
    text = BASE + textwrap.dedent(tracing)
    path.write_text(text)
    return parse_config(text.encode(), path)


def test_tracing_is_off_unless_enabled(config_dir: Path) -> None:
    assert parse(config_dir, "").tracing.enabled is False
    assert parse(config_dir, "tracing: {endpoint: 'http://c:4317'}").tracing.enabled is False


def test_enabled_tracing_resolves_the_endpoint_and_service_name(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    tracing = parse(config_dir, "tracing: {enabled: true}").tracing
    assert (tracing.endpoint, tracing.insecure, tracing.sample_ratio) == (
        DEFAULT_ENDPOINT,
        True,
        1.0,
    )
    assert tracing.service_name_for("authz") == "extproc-authz"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4317")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway")
    tracing = parse(config_dir, "tracing: {enabled: true}").tracing
    assert (tracing.endpoint, tracing.insecure) == ("https://collector.example:4317", False)
    assert tracing.service_name_for("authz") == "gateway"
    written = """\
    tracing:
      enabled: true
      endpoint: http://otel:4317
      service_name: pep
      sample_ratio: 0.25
    """
    tracing = parse(config_dir, written).tracing
    assert (tracing.endpoint, tracing.service_name, tracing.sample_ratio) == (
        "http://otel:4317",
        "pep",
        0.25,
    )


def test_invalid_tracing_settings_are_reported_each_with_its_line(config_dir: Path) -> None:
    written = """\
    tracing:
      enabled: true
      endpoint: grpc://otel:4317
      sample_ratio: 1.5
      headers: {authorization: x}
    """
    with pytest.raises(ConfigError) as raised:
        parse(config_dir, written)
    lines = raised.value.reason.splitlines()
    assert any(":14: tracing.sample_ratio:" in line for line in lines), lines
    assert any(":15: tracing: unknown key 'headers'" in line for line in lines), lines
    bad_scheme = "tracing: {enabled: true, endpoint: 'grpc://otel:4317'}"
    with pytest.raises(ConfigError, match=r":11: tracing\.endpoint: 'grpc://otel:4317' is not"):
        parse(config_dir, bad_scheme)
    with pytest.raises(ConfigError, match=r"tracing\.enabled: expected true or false"):
        parse(config_dir, "tracing: {enabled: 'yes'}")


def run_python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
        check=False,
    )


def test_without_the_extra_enabling_tracing_is_a_config_error_naming_the_fix(
    config_dir: Path,
) -> None:
    path = config_dir / "config.yaml"
    path.write_text(BASE + "tracing:\n  enabled: true\n")
    result = run_python(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from pathlib import Path
        from extproc.errors import ConfigError, ExtprocError
        from extproc.settings import load_config
        from extproc.server import WorkerSpec, _start_tracing
        try:
            load_config(Path({str(path)!r}))
        except ConfigError as exc:
            print(exc.reason)
        spec = WorkerSpec("authz", Path("c.yaml"), "127.0.0.1", 1, 0, "info", 1.0)
        from extproc.tracing.settings import TracingConfig
        try:
            _start_tracing(TracingConfig(enabled=True), spec)
        except ExtprocError as exc:
            print(exc.reason)
        """
    )
    assert result.returncode == 0, result.stderr
    config_line, start_line = result.stdout.strip().splitlines()
    assert ":12: tracing.enabled: tracing needs the OpenTelemetry packages" in config_line
    assert config_line.endswith("pip install 'extproc[otel]'")
    assert start_line.endswith("pip install 'extproc[otel]'")


def test_with_tracing_off_no_opentelemetry_module_is_loaded_and_no_interceptor_runs(
    authz: tuple[Any, DevIssuer], tmp_path: Path
) -> None:
    result = run_python(
        f"""
        import asyncio, sys
        from pathlib import Path
        import extproc.cli, extproc.server
        from extproc.app import build_authz
        from extproc.authz.service import AuthorizationService
        from extproc.processor.service import ExternalProcessorService
        from extproc.reload import RuntimeHolder
        from extproc.settings import load_config
        from tests.unit.test_authz_service import check

        config = load_config(Path({str(tmp_path / "config.yaml")!r}))
        spec = extproc.server.WorkerSpec("authz", config.path, "127.0.0.1", 1, 0, "info", 1.0)
        assert extproc.server._start_tracing(config.tracing, spec) is None
        runtime = build_authz(config, load_keys=False)
        service = AuthorizationService(RuntimeHolder(runtime, lambda: runtime))
        answer = asyncio.run(service.Check(check(None, "192.0.2.10"), None))
        from envoy.service.auth.v3 import external_auth_pb2
        assert external_auth_pb2.CheckResponse.FromString(answer).denied_response.status.code
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
        """,
        TEST_MODEL_KEY="k",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_worker_flushes_its_spans_when_it_stops(
    authz: tuple[Any, DevIssuer], tmp_path: Path, collector: Collector
) -> None:
    """A real `extproc serve authz`: the batch would wait a minute; SIGTERM must export it."""
    config = tmp_path / "config.yaml"
    config.write_text(
        config.read_text() + f"tracing:\n  enabled: true\n  endpoint: {collector.endpoint}\n"
    )
    port = free_port()
    env = {**os.environ, "TEST_MODEL_KEY": "k", "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "extproc", "serve", "authz", "--config", str(config),
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        from extproc.demo.up import wait_for_grpc_health

        wait_for_grpc_health(port, process=process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            stub.Check(authz_case.check(None, "192.0.2.10"), timeout=10)
        assert collector.spans() == []  # still in the batch
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    spans: list[ExportedSpan] = collector.wait_for(lambda span: span.name == CHECK, timeout=5)
    assert len(spans) == 1
    assert spans[0].attributes["extproc.error_code"] == "missing_token"


def test_opentelemetry_files_overwritten_by_an_older_copy_are_a_problem_naming_the_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """xds-protos ships its own copy of the OTLP protocol files; installed over
    opentelemetry-proto's, the exporter no longer imports. The config check says how to mend it."""
    import importlib

    from extproc.tracing import settings as tracing_settings

    real = importlib.import_module

    def broken(name: str, package: str | None = None) -> Any:
        if name.startswith("opentelemetry.exporter"):
            raise ImportError("cannot import name 'InstrumentationScope'")
        return real(name, package)

    monkeypatch.setattr(tracing_settings.importlib, "import_module", broken)
    problem = tracing_settings.opentelemetry_problem()
    assert problem is not None
    assert "InstrumentationScope" in problem
    assert "pip install --force-reinstall --no-deps opentelemetry-proto==" in problem
    monkeypatch.setattr(tracing_settings.importlib, "import_module", real)
    assert tracing_settings.opentelemetry_problem() is None
