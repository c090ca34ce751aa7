# extproc's services (authz, processor) and the demo's parts, as one slim non-root image.
# docker compose up (docker-compose.yml) runs them beside the official Envoy image.
FROM python:3.11-slim

# Installed the way the README installs it, without the test and dev tools.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extproc ./extproc
COPY envoy ./envoy
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --create-home --uid 10001 extproc && mkdir /state && chown extproc /state
USER extproc
WORKDIR /home/extproc
ENTRYPOINT ["extproc"]
CMD ["--help"]
