"""What write-ahead audit costs a request: E2 (authz + processor, 8 KB JSON masked both ways)
at fixed rates with ``audit.durability: before_forward`` (the opening record fsynced before the
request may reach the model) against ``after_exchange`` (one record at the end).

    python bench/durability.py [--rates 200,500] [--duration 20]

Prints one JSON line per mode and rate: p50 and p99 latency (from each request's due time),
errors; the differences are what before_forward adds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from harness import loadavg  # noqa: E402
from paced import run as paced  # noqa: E402
from run import SCENARIOS  # noqa: E402
from stack import running  # noqa: E402
from workload import chat_request  # noqa: E402


def measure(durability: str, rates: list[float], duration: float) -> list[dict[str, object]]:
    scenario = next(s for s in SCENARIOS if s.id == "E2")
    out = []
    with tempfile.TemporaryDirectory(prefix="extproc-durability-") as directory:
        root = Path(directory)
        with running(
            root, [scenario], workers=1, envoy_concurrency=1, durability=durability
        ) as stack:
            body = chat_request()
            paced(stack.url(scenario), 50, 3, headers=stack.headers, body=body)  # warm up
            for rate in rates:
                run = paced(stack.url(scenario), rate, duration, headers=stack.headers, body=body)
                out.append(
                    {"durability": durability, "rate": rate, "p50_ms": run.p50_ms,
                     "p99_ms": run.p99_ms, "errors": run.non2xx + run.errors + run.unfinished,
                     "sustained": run.sustained}
                )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,500")
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(json.dumps({"loadavg_start": loadavg()}))
    for durability in ("after_exchange", "before_forward", "after_exchange", "before_forward"):
        for row in measure(durability, rates, args.duration):
            print(json.dumps(row), flush=True)
    print(json.dumps({"loadavg_end": loadavg()}))


if __name__ == "__main__":
    main()
