# extproc's services (authz, processor) and the demo's parts, as one slim non-root image.
# docker compose up (docker-compose.yml) runs them beside the official Envoy image.
FROM python:3.11-slim

# Installed the way the README installs it, without the test and dev tools.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extproc ./extproc
COPY envoy ./envoy
# With the tracing extra; xds-protos ships an older copy of the OTLP protocol files, so
# opentelemetry-proto's own are put back after it, then checked (as `make install` does).
RUN pip install --no-cache-dir ".[otel]" \
 && pip install --no-cache-dir --force-reinstall --no-deps \
      "opentelemetry-proto==$(python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')" \
 && python -c 'from extproc.tracing.settings import opentelemetry_problem as p; import sys; sys.exit(p())' \
 && rm -rf /src

RUN useradd --create-home --uid 10001 extproc && mkdir /state && chown extproc /state
USER extproc
WORKDIR /home/extproc
ENTRYPOINT ["extproc"]
CMD ["--help"]
