"""Masking through the real Envoy, against pass-through, in the same run and Envoy process.

Listeners answer the same 8 KB JSON body of customer records (e-mails, card numbers) with a
`direct_response`: `direct` has no filters; `authz` runs extproc authz; `full` runs authz and the
processor, which masks the 8 KB response (and audits every exchange). wrk drives each; S0 is
measured before and after. Python CPU is the processor workers' utime+stime per request.

    python bench/processor_bench.py [--workers 1,2] [--connections 16,64] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from authz_bench import CONFIG, envoy_config
from harness import children, cpu_seconds, ensure_wrk, start_service, stop, wrk
from masking_bench import records_body

from extproc.demo.issuer import DevIssuer
from extproc.envoy_runner import EnvoyProcess, free_port
from extproc.geo.writer import write_demo_database

MASKING = """
masking:
  key_env: BENCH_MASKING_KEY
  profiles:
    standard: {{actions: {{default: redact, email: tokenize}}}}
audit:
  directory: "{audit}"
  key_env: BENCH_AUDIT_KEY
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    if ensure_wrk() is None:
        return 2
    body = records_body(8 * 1024).decode()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        issuer = DevIssuer(root / "issuer", port=0)
        issuer.start()
        database = write_demo_database(root / "demo.mmdb")
        config = root / "config.yaml"
        config.write_text(
            CONFIG.format(issuer_url=issuer.issuer_url, database=database)
            + MASKING.format(audit=root / "audit")
        )
        token = issuer.mint("bench", groups=("ml-eu",), audience="extproc-demo", ttl=7200)
        headers = [f"authorization: Bearer {token}", "x-forwarded-for: 192.0.2.10"]
        env = dict(
            os.environ,
            BENCH_MODEL_KEY="bench-secret",
            BENCH_MASKING_KEY="m" * 40,
            BENCH_AUDIT_KEY="a" * 40,
        )
        for workers in [int(w) for w in args.workers.split(",")]:
            authz, authz_base = start_service("authz", config, workers, env)
            processor, processor_base = start_service("processor", config, workers, env)
            ports = {name: free_port() for name in ("direct", "authz", "full", "admin")}
            envoy_path = root / f"envoy-{workers}.json"
            envoy_path.write_text(
                json.dumps(
                    envoy_config(
                        ports["admin"],
                        {
                            "direct": (ports["direct"], []),
                            "authz": (ports["authz"], ["authz"]),
                            "full": (ports["full"], ["authz", "processor"]),
                        },
                        {
                            "extproc_authz": [authz_base + i for i in range(workers)],
                            "extproc_processor": [processor_base + i for i in range(workers)],
                        },
                        body,
                    )
                )
            )
            envoy = EnvoyProcess(envoy_path, admin_port=ports["admin"], log_path=root / "envoy.log")
            envoy.start()
            try:
                pids = children(processor.pid)
                for connections in [int(c) for c in args.connections.split(",")]:
                    url = {
                        name: f"http://127.0.0.1:{ports[name]}/v1/records"
                        for name in ("direct", "authz", "full")
                    }
                    wrk(url["full"], connections, 2, headers)
                    before = wrk(url["direct"], connections, args.duration, headers)
                    with_authz = wrk(url["authz"], connections, args.duration, headers)
                    cpu0 = cpu_seconds(pids)
                    full = wrk(url["full"], connections, args.duration, headers)
                    cpu1 = cpu_seconds(pids)
                    after = wrk(url["direct"], connections, args.duration, headers)
                    s0 = (before.rps + after.rps) / 2
                    cpu_ms = (cpu1 - cpu0) * 1000 / max(1, full.requests)
                    rows.append((workers, connections, before, after, with_authz, full, s0, cpu_ms))
                    print(f"workers={workers} c={connections}: S0 {s0:.0f} authz {with_authz.rps:.0f} "
                          f"full {full.rps:.0f} cpu/req {cpu_ms:.3f} ms", flush=True)  # fmt: skip
            finally:
                envoy.stop()
                for process in (authz, processor):
                    stop(process)
        issuer.stop()
    print()
    print(
        "| workers | conns | S0 req/s (before→after) | authz req/s | authz+processor req/s | p50 ms | p99 ms | ratio to S0 | processor CPU ms/req | non-2xx |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for workers, connections, before, after, with_authz, full, s0, cpu_ms in rows:
        print(f"| {workers} | {connections} | {before.rps:.0f}→{after.rps:.0f} | {with_authz.rps:.0f} | "
              f"{full.rps:.0f} | {full.p50_ms:.2f} | {full.p99_ms:.2f} | {full.rps / s0:.3f} | {cpu_ms:.3f} | {full.errors} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
