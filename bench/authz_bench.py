"""Check throughput and latency through the real Envoy, against Envoy without ext_authz, in the
same run and the same Envoy process.

Two listeners share one Envoy: `direct` answers with a 1 KB JSON body (direct_response, no
filters but the router); `authz` runs ext_authz (extproc authz, N worker processes) first, then the
same direct_response. wrk drives each for a fixed time after a warm-up, S0 before and after the
authz runs so drift shows. Python CPU per request comes from /proc/PID/stat of the workers.

    python bench/authz_bench.py [--workers 1,2] [--connections 16,64] [--duration 10]

Needs `wrk` (apt-get install wrk). Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import children, cpu_seconds, ensure_wrk, wrk

from extproc.demo.issuer import DevIssuer
from extproc.demo.up import wait_for_grpc_health
from extproc.envoy_runner import EnvoyProcess, free_port
from extproc.geo.writer import write_demo_database

BODY = json.dumps({"id": "x" * 16, "choices": [{"text": "y" * 960}]})

CONFIG = """
version: 1
identity:
  issuers:
    - name: bench
      issuer: "{issuer_url}"
      discovery: true
      audiences: [extproc-demo]
      algorithms: [RS256]
geo:
  database: "{database}"
  regions: {{eu: [DE], us: [US]}}
policy:
  rules:
    - name: eu-team-to-eu
      when: {{groups_any: [ml-eu], source_region: eu, target_region: eu}}
      effect: allow
upstreams:
  credentials:
    model: {{env: BENCH_MODEL_KEY}}
"""


def _filter(kind: str) -> list[dict]:
    if kind == "authz":
        return [
            {
                "name": "envoy.filters.http.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {
                        "request_mutations": [
                            {
                                "append": {
                                    "header": {
                                        "key": "x-extproc-client-address",
                                        "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                                    },
                                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                }
                            }
                        ]
                    },
                },
            },
            {
                "name": "envoy.filters.http.ext_authz",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "transport_api_version": "V3",
                    "failure_mode_allow": False,
                    "grpc_service": {
                        "envoy_grpc": {"cluster_name": "extproc_authz"},
                        "timeout": "2s",
                    },
                },
            },
        ]
    return [
        {
            "name": "envoy.filters.http.ext_proc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "failure_mode_allow": False,
                "message_timeout": "5s",
                "grpc_service": {
                    "envoy_grpc": {"cluster_name": "extproc_processor"},
                    "timeout": "60s",
                },
                "processing_mode": {
                    "request_header_mode": "SEND",
                    "response_header_mode": "SEND",
                    "request_body_mode": "BUFFERED",
                    "response_body_mode": "BUFFERED",
                    "request_trailer_mode": "SKIP",
                    "response_trailer_mode": "SKIP",
                },
                "allow_mode_override": True,
                "metadata_options": {
                    "forwarding_namespaces": {"untyped": ["envoy.filters.http.ext_authz"]}
                },
            },
        }
    ]


def envoy_config(
    admin: int,
    listeners: dict[str, tuple[int, list[str]]],
    clusters: dict[str, list[int]],
    body: str = BODY,
) -> dict:
    """One listener per scenario, each answering ``body`` with a direct_response after the
    named filters ("authz": header_mutation + ext_authz, "processor": ext_proc)."""

    def listener(name: str, port: int, kinds: list[str]) -> dict:
        filters = [f for kind in kinds for f in _filter(kind)]
        filters.append(
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        )
        route: dict = {
            "match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": body}},
        }
        if "authz" in kinds:
            route["typed_per_filter_config"] = {
                "envoy.filters.http.ext_authz": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                    "check_settings": {
                        "context_extensions": {
                            "target_region": "eu",
                            "upstream_credential": "model",
                        }
                    },
                }
            }
        return {
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 8388608,
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "stat_prefix": name,
                                "use_remote_address": True,
                                "xff_num_trusted_hops": 1,
                                "route_config": {
                                    "max_direct_response_body_size_bytes": 1048576,
                                    "response_headers_to_add": [
                                        {
                                            "header": {
                                                "key": "content-type",
                                                "value": "application/json",
                                            }
                                        }
                                    ],
                                    "virtual_hosts": [
                                        {"name": "all", "domains": ["*"], "routes": [route]}
                                    ],
                                },
                                "http_filters": filters,
                            },
                        }
                    ]
                }
            ],
        }

    def cluster(name: str, ports: list[int]) -> dict:
        return {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": "127.0.0.1", "port_value": p}
                                    }
                                }
                            }
                            for p in ports
                        ]
                    }
                ],
            },
        }

    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [listener(name, port, kinds) for name, (port, kinds) in listeners.items()],
            "clusters": [cluster(name, ports) for name, ports in clusters.items()],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--envoy-concurrency", type=int, default=1)
    args = parser.parse_args()
    if ensure_wrk() is None:
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        issuer = DevIssuer(root / "issuer", port=0)
        issuer.start()
        database = root / "demo.mmdb"
        write_demo_database(database)
        config = root / "config.yaml"
        config.write_text(CONFIG.format(issuer_url=issuer.issuer_url, database=database))
        token = issuer.mint("bench", groups=("ml-eu",), audience="extproc-demo", ttl=7200)
        headers = [f"authorization: Bearer {token}", "x-forwarded-for: 192.0.2.10"]
        for workers in [int(w) for w in args.workers.split(",")]:
            base = free_port()
            env = dict(os.environ, BENCH_MODEL_KEY="bench-secret")
            server = subprocess.Popen(
                [sys.executable, "-m", "extproc", "serve", "authz", "--config", str(config),
                 "--port", str(base), "--workers", str(workers), "--log-level", "warning"],
                env=env,
            )  # fmt: skip
            for i in range(workers):
                wait_for_grpc_health(base + i)
            ports = {"direct": free_port(), "authz": free_port(), "admin": free_port()}
            envoy_path = root / f"envoy-{workers}.json"
            config_dict = envoy_config(
                ports["admin"],
                {"direct": (ports["direct"], []), "authz": (ports["authz"], ["authz"])},
                {"extproc_authz": [base + i for i in range(workers)]},
            )
            envoy_path.write_text(json.dumps(config_dict))
            envoy = EnvoyProcess(
                envoy_path,
                admin_port=ports["admin"],
                log_path=root / "envoy.log",
                concurrency=args.envoy_concurrency,
            )
            envoy.start()
            try:
                worker_pids = children(server.pid)
                for connections in [int(c) for c in args.connections.split(",")]:
                    direct = f"http://127.0.0.1:{ports['direct']}/eu/v1/chat/completions"
                    authz = f"http://127.0.0.1:{ports['authz']}/eu/v1/chat/completions"
                    wrk(authz, connections, 2, headers)  # warm-up: caches, connections
                    s0_before = wrk(direct, connections, args.duration, headers)
                    cpu0 = cpu_seconds(worker_pids)
                    s1 = wrk(authz, connections, args.duration, headers)
                    cpu1 = cpu_seconds(worker_pids)
                    s0_after = wrk(direct, connections, args.duration, headers)
                    s0 = (s0_before.rps + s0_after.rps) / 2
                    cpu_ms = (cpu1 - cpu0) * 1000 / max(1, s1.requests)
                    rows.append(
                        (workers, connections, s0_before, s0_after, s1, s1.rps / s0, cpu_ms)
                    )
                    print(f"workers={workers} c={connections}: S0 {s0_before.rps:.0f}->{s0_after.rps:.0f} "
                          f"authz {s1.rps:.0f} ratio {s1.rps / s0:.2f} cpu/req {cpu_ms:.3f} ms", flush=True)  # fmt: skip
            finally:
                envoy.stop()
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=20)
        issuer.stop()
    print()
    print(
        "| workers | conns | S0 req/s (before→after) | authz req/s | p50 ms | p99 ms | ratio to S0 | Python CPU ms/req | non-2xx |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for workers, connections, before, after, s1, ratio, cpu_ms in rows:
        print(f"| {workers} | {connections} | {before.rps:.0f}→{after.rps:.0f} | {s1.rps:.0f} | "
              f"{s1.p50_ms:.2f} | {s1.p99_ms:.2f} | {ratio:.2f} | {cpu_ms:.3f} | {s1.errors} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
