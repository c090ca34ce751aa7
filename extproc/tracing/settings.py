"""The config's ``tracing`` section as a typed model, compiled into ``TracingConfig``.

```yaml
tracing:
  enabled: true
  endpoint: http://otel-collector:4317   # OTLP over gRPC; https:// for TLS
  sample_ratio: 0.1                      # of traces that arrive without a sampled parent
```

Off by default. Left unset, ``endpoint`` and ``service_name`` follow the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_SERVICE_NAME`` variables, so a platform that sets those for every process needs no edit
here; the exporter's headers (a collector's API key) come only from
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``, never from this file.

Enabling tracing needs the optional packages (``pip install 'extproc[otel]'``); their absence is a
config problem, reported by ``extproc check`` and before any worker starts. Checking for them
locates the package without importing it: a config with tracing off never loads OpenTelemetry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from extproc.config.base import Name, SettingsModel
from extproc.config.problems import Problems

DEFAULT_ENDPOINT = "http://127.0.0.1:4317"
INSTALL_HINT = "pip install 'extproc[otel]'"
# The modules tracing imports when it starts; each comes with the ``otel`` extra.
REQUIRED_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TracingSettings(SettingsModel):
    """OpenTelemetry traces of the gRPC services, exported over OTLP/gRPC."""

    enabled: bool = Field(False, description="export a span per Check, Process stream and RPC")
    endpoint: Name | None = Field(
        None,
        description=(
            "the OTLP/gRPC collector, http:// (plaintext) or https:// (TLS); default: "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, else "
            f"{DEFAULT_ENDPOINT}"
        ),
    )
    service_name: Name | None = Field(
        None,
        description="service.name of the spans; default: OTEL_SERVICE_NAME, else extproc-<service>",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description=(
            "share of new traces sampled; a request whose parent (Envoy, the client) made the "
            "sampling decision follows that decision"
        ),
    )
    export_timeout: float = Field(10, gt=0, description="seconds one export may take")


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """What a worker needs to start tracing: an endpoint and service name already resolved."""

    enabled: bool = False
    endpoint: str = DEFAULT_ENDPOINT
    service_name: str | None = None  # None: extproc-<service>
    sample_ratio: float = 1.0
    export_timeout: float = 10.0

    @property
    def insecure(self) -> bool:
        return not self.endpoint.startswith("https://")

    def service_name_for(self, service: str) -> str:
        return self.service_name or f"extproc-{service}"


TRACING_OFF = TracingConfig()


def compile_tracing(
    section: TracingSettings, environ: Mapping[str, str] | None = None
) -> TracingConfig:
    if not section.enabled:
        return TRACING_OFF
    env = os.environ if environ is None else environ
    problems = Problems()
    endpoint = section.endpoint or _first(env, ENDPOINT_VARIABLES) or DEFAULT_ENDPOINT
    where = ("endpoint",) if section.endpoint else ()
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        problems.add(where, f"{endpoint!r} is not an http:// or https:// URL of a collector")
    unusable = opentelemetry_problem()
    if unusable is not None:
        problems.add(("enabled",), unusable)
    problems.check()
    return TracingConfig(
        enabled=True,
        endpoint=endpoint,
        service_name=section.service_name or env.get("OTEL_SERVICE_NAME") or None,
        sample_ratio=section.sample_ratio,
        export_timeout=section.export_timeout,
    )


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if value := env.get(name, "").strip():
            return value
    return None


def opentelemetry_problem() -> str | None:
    """Why tracing cannot start here, with the fix; None when it can. Imports the exporter
    (tracing is enabled when this runs): a package may be present yet broken, as when another
    package's older copy of the OTLP protocol files (``opentelemetry/proto``, which xds-protos
    also ships) was installed over opentelemetry-proto's."""
    missing = [name for name in REQUIRED_MODULES if not _installed(name)]
    if missing:
        return f"tracing needs the OpenTelemetry packages ({missing[0]} is missing): {INSTALL_HINT}"
    try:
        for name in REQUIRED_MODULES:
            importlib.import_module(name)
    except ImportError as exc:
        try:
            version = importlib.metadata.version("opentelemetry-proto")
        except importlib.metadata.PackageNotFoundError:
            return f"the OpenTelemetry packages do not import ({exc}): {INSTALL_HINT}"
        return (
            f"the OpenTelemetry packages do not import ({exc}): another package installed older"
            " copies of the OTLP protocol files over them; reinstall those: pip install"
            f" --force-reinstall --no-deps opentelemetry-proto=={version}"
        )
    return None


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported. Its parent packages are imported to look (that is how
    Python finds a submodule), which happens only once tracing is enabled."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
