"""Processes, ports and health for the gRPC services.

One worker process per port (``port``, ``port+1``, ...), each listed as its own endpoint of the
Envoy cluster, so Envoy's load balancer spreads the work across cores deterministically.
``SO_REUSEPORT`` is turned off: a stale process must fail to bind, not silently take traffic.
The parent validates the config before any worker starts, restarts a worker that dies (with
backoff and the last good config, see ``extproc.supervise``), and stops them all on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from extproc import app, metrics
from extproc.audit.sink import AuditSinks
from extproc.errors import Code, ConfigError, ExtprocError
from extproc.lifeline import die_with_parent, orphaned
from extproc.logs import configure_logging
from extproc.metrics_http import serve_metrics
from extproc.reload import RuntimeHolder
from extproc.supervise import GIVE_UP_AFTER, Supervisor, Worker
from extproc.tracing.settings import INSTALL_HINT, TracingConfig, opentelemetry_problem

if TYPE_CHECKING:
    from extproc.tracing.otel import Tracing

log = logging.getLogger("extproc.server")

# Bodies of several MB (long prompts, large completions) must fit in one ext_proc message.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
GRPC_OPTIONS = (
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.http2.max_pings_without_data", 0),
)
KEY_REFRESH_INTERVAL_SECONDS = 60.0
SUPERVISOR_POLL_SECONDS = 1.0
AUDIT_STATS_INTERVAL_SECONDS = 60.0
AUDIT_METRICS_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    service: str
    config_path: Path
    host: str
    port: int
    index: int
    log_level: str
    reload_interval: float
    config_data: bytes | None = None  # the last good content; None: read the file
    keys_directory: Path | None = None  # issuer keys shared by the service's workers
    supervisor_pid: int | None = None  # the worker stops once this process is gone


def _register_authz(server: grpc.aio.Server, holder: RuntimeHolder[Any]) -> str:
    from extproc.authz.service import SERVICE_NAME, AuthorizationService, add_to_server

    add_to_server(AuthorizationService(holder), server)
    return SERVICE_NAME


def _register_processor(server: grpc.aio.Server, holder: RuntimeHolder[Any]) -> str:
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

    from extproc.processor.service import ExternalProcessorService

    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExternalProcessorService(holder), server
    )
    return "envoy.service.ext_proc.v3.ExternalProcessor"


def _register_approvals(server: grpc.aio.Server, holder: RuntimeHolder[Any]) -> str:
    from extproc.approvals.api import approvals_pb2_grpc
    from extproc.approvals.api.service import ApprovalsService

    approvals_pb2_grpc.add_ApprovalsServicer_to_server(ApprovalsService(holder), server)
    return "extproc.approvals.v1.Approvals"


REGISTRARS: dict[str, Callable[[grpc.aio.Server, RuntimeHolder[Any]], str]] = {
    "authz": _register_authz,
    "processor": _register_processor,
    "approvals": _register_approvals,
}


async def run_worker(spec: WorkerSpec) -> None:
    """Serve one port until SIGTERM/SIGINT."""
    sinks = AuditSinks()

    def build() -> Any:
        # A reload keeps the keys of issuers that are down right now (see KeyStore.adopt).
        return app.build(
            spec.service,
            spec.config_path,
            spec.index,
            sinks,
            previous=holder.current,
            keys_directory=spec.keys_directory,
        )

    # The first runtime comes from the content the supervisor validated, which may differ from
    # a bad file now on disk; reloads read the file once it changes.
    runtime = await asyncio.to_thread(
        lambda: app.build(
            spec.service,
            spec.config_path,
            spec.index,
            sinks,
            spec.config_data,
            keys_directory=spec.keys_directory,
        )
    )
    holder: RuntimeHolder[Any] = RuntimeHolder(runtime, build, _revision_changed)
    metrics.serving_revision(None, runtime.config.revision)
    tracing = _start_tracing(runtime.config.tracing, spec)
    # Tracing off: no interceptor at all, so an RPC costs exactly what it did without tracing.
    interceptors = None if tracing is None else (tracing.interceptor,)
    server = grpc.aio.server(options=GRPC_OPTIONS, interceptors=interceptors)
    service_name = REGISTRARS[spec.service](server, holder)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{spec.host}:{spec.port}"
    _listen(server, address)
    await server.start()
    for name in ("", service_name):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        extra={"service": spec.service, "address": address, "worker": spec.index},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(holder.watch(spec.reload_interval)),
        asyncio.create_task(_report_audit_stats(sinks)),
    ]
    if spec.supervisor_pid is not None:
        tasks.append(asyncio.create_task(_stop_when_orphaned(spec.supervisor_pid, stop)))
    if spec.service in ("authz", "approvals"):
        tasks.append(asyncio.create_task(_refresh_keys(holder)))
    if spec.service == "approvals" and spec.index == 0:
        from extproc.approvals.feed import run_background

        # One reader of the store's changes (audit, webhooks) and one expiry sweep per service.
        tasks.append(asyncio.create_task(run_background(holder)))
    await stop.wait()
    await health.enter_graceful_shutdown()
    for task in tasks:
        task.cancel()
    await server.stop(grace=5)
    holder.current.close()
    sinks.close_all()  # flush every queued audit event before the process ends
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)  # export the spans still queued


def _listen(server: grpc.aio.Server, address: str) -> None:
    """Bind ``address`` or raise ``listen_failed`` naming it. Older grpc versions return 0 when
    the port cannot be bound, newer ones raise RuntimeError: both mean the same to an operator
    (the port is taken, or the host is not an address of this machine)."""
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise ExtprocError(
            f"cannot listen on {address}: the port is in use or the address is not this host's",
            code=Code.LISTEN_FAILED,
        )


def _start_tracing(config: TracingConfig, spec: WorkerSpec) -> Tracing | None:
    """This worker's tracer provider, when the config enables tracing. Imported here, not at
    the top: with tracing off no OpenTelemetry module is ever loaded."""
    if not config.enabled:
        return None
    try:
        from extproc.tracing.otel import start_tracing
    except ImportError:  # the config check found them; a broken install still says how
        problem = opentelemetry_problem() or f"OpenTelemetry cannot be imported: {INSTALL_HINT}"
        raise ExtprocError(f"tracing is enabled but {problem}", code=Code.CONFIG_INVALID) from None
    return start_tracing(config, spec.service, spec.index)


def _revision_changed(old: Any, new: Any) -> None:
    metrics.serving_revision(old.config.revision, new.config.revision)
    if old.config.tracing != new.config.tracing:
        # The interceptor and exporter are fixed when a worker starts.
        log.warning("tracing settings changed; they apply once the service restarts")


async def _report_audit_stats(sinks: AuditSinks) -> None:
    """The audit writers' counters as metrics every few seconds, and as a log line a minute
    (submitted, written, rejected, write errors, queue depth): a rejected or failed write is
    never silent."""
    ticks = 0
    while True:
        await asyncio.sleep(AUDIT_METRICS_INTERVAL_SECONDS)
        ticks += 1
        stats = sinks.stats()
        for chain, counters in stats.items():
            metrics.record_audit_counters(chain, counters)
        if ticks % round(AUDIT_STATS_INTERVAL_SECONDS / AUDIT_METRICS_INTERVAL_SECONDS):
            continue
        for chain, counters in stats.items():
            level = (
                logging.ERROR if counters["rejected"] or counters["write_errors"] else logging.INFO
            )
            log.log(level, "audit stats", extra={"chain": chain, **counters})


async def _stop_when_orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """A supervisor killed with SIGKILL cannot stop its workers: each notices it is gone and
    stops on its own (flushing its audit queue) instead of holding its port. On Linux the
    kernel's SIGTERM (``die_with_parent``) usually comes first; this covers other systems."""
    while not orphaned(supervisor):
        await asyncio.sleep(SUPERVISOR_POLL_SECONDS)
    log.warning("the supervisor is gone; stopping", extra={"supervisor_pid": supervisor})
    stop.set()


async def _refresh_keys(holder: RuntimeHolder[Any]) -> None:
    while True:
        # As often as the config's jwks_max_age_seconds asks, at most once a minute apart.
        max_age = holder.current.config.identity.jwks_max_age_seconds
        await asyncio.sleep(min(KEY_REFRESH_INTERVAL_SECONDS, max_age))
        try:
            await asyncio.to_thread(holder.current.keys.refresh_stale)
        except Exception as exc:  # keep serving with the keys we have
            log.warning("periodic key refresh failed", extra={"error_type": type(exc).__name__})


def _worker_entry(spec: WorkerSpec) -> None:
    if spec.supervisor_pid is not None:
        die_with_parent(spec.supervisor_pid)
    configure_logging(spec.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(run_worker(spec))
    except ExtprocError as exc:
        log.error(
            "worker failed",
            extra={"reason": exc.reason, "error": exc.code, "worker": spec.index},
        )
        raise SystemExit(2) from None


def serve(
    service: str,
    config_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    workers: int = 1,
    log_level: str = "info",
    reload_interval: float = 1.0,
    metrics_port: int | None = None,
) -> int:
    """Validate the config, start ``workers`` processes on consecutive ports, supervise them;
    with ``metrics_port``, serve ``/metrics`` (all workers) and ``/healthz`` there."""
    configure_logging(log_level)
    if service not in app.SERVICES:
        log.error("unknown service", extra={"service": service})
        return 2
    config = _validated(service, config_path)
    if config is None:
        return 2
    with _metrics_directory(), _private_directory("extproc-keys-") as keys:
        specs = [
            WorkerSpec(service, config_path, host, port + i, i, log_level, reload_interval)
            for i in range(workers)
        ]
        specs = [replace(spec, keys_directory=keys) for spec in specs]
        return _supervise(specs, config, metrics_port)


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    """Workers write their samples here; the supervisor aggregates them (set before any worker
    starts, since prometheus_client reads it when a worker imports it)."""
    with _private_directory("extproc-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@contextlib.contextmanager
def _private_directory(prefix: str) -> Iterator[Path]:
    """A directory only this user can read or write (0700), removed when the service stops."""
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _validated(service: str, config_path: Path) -> bytes | None:
    """The config's content if it would serve (logged reason otherwise)."""
    try:
        data = config_path.read_bytes()
        app.validate(service, config_path, data)
    except OSError as exc:
        log.error("cannot read config", extra={"reason": exc.strerror, "path": str(config_path)})
        return None
    except ConfigError as exc:
        log.error("invalid config", extra={"reason": exc.reason})
        return None
    except ExtprocError as exc:
        log.error("cannot start", extra={"reason": exc.reason, "error": exc.code})
        return None
    return data


def _supervise(specs: list[WorkerSpec], config: bytes, metrics_port: int | None) -> int:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    by_index = {spec.index: spec for spec in specs}
    first = specs[0]
    endpoint = None
    if metrics_port is not None:  # before any worker starts: a taken port stops nothing running
        try:
            endpoint = serve_metrics(
                first.host, metrics_port, first.service, lambda: (_serving(specs), len(specs))
            )
        except OSError as exc:
            log.error(
                "cannot serve metrics",
                extra={
                    "reason": f"cannot listen on {first.host}:{metrics_port}: {exc.strerror}",
                    "error": Code.LISTEN_FAILED,
                },
            )
            return 2
        log.info("metrics", extra={"url": f"http://{first.host}:{metrics_port}/metrics"})
    supervisor = Supervisor(
        len(specs),
        config,
        start=lambda index, data: _start(context, replace(by_index[index], config_data=data)),
        validate=lambda: _validated(first.service, first.config_path),
        clock=time.monotonic,
        on_exit=_forget_samples,
    )
    failed = False
    stamp = _stamp(first.config_path)
    while not stopping:
        time.sleep(0.2)
        if (current := _stamp(first.config_path)) != stamp:
            stamp = current
            supervisor.config_changed()  # a worker restarted later gets what its siblings serve
        if not stopping and not supervisor.tick():
            log.error(
                "no worker can serve; stopping",
                extra={
                    "service": first.service,
                    "reason": f"every worker failed {GIVE_UP_AFTER} times in a row at start "
                    '(the "worker failed" lines above say why)',
                },
            )
            failed = True
            break
    if endpoint is not None:
        endpoint.shutdown()
    processes = supervisor.workers
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    return 1 if failed else 0


def _serving(specs: list[WorkerSpec]) -> int:
    """How many workers answer their gRPC health check with SERVING right now."""
    count = 0
    for spec in specs:
        with grpc.insecure_channel(f"{spec.host}:{spec.port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=0.5
                )
            except grpc.RpcError:
                continue
        count += reply.status == health_pb2.HealthCheckResponse.SERVING
    return count


def _forget_samples(worker: Worker) -> None:
    """A dead worker's live gauges (queue depth, revision) must not count any more."""
    if worker.pid is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Identity, size and modification time of a file (None if it cannot be read)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _start(context: Any, spec: WorkerSpec) -> BaseProcess:
    spec = replace(spec, supervisor_pid=os.getpid())
    process: BaseProcess = context.Process(
        target=_worker_entry, args=(spec,), name=f"extproc-{spec.service}-{spec.index}"
    )
    process.start()
    return process
