"""Long-run figures: both services with masking and write-ahead audit, driven at a constant share
of their measured capacity; errors, the memory of every worker over time, and audit events
counted against the requests served.

    python bench/soak.py [--minutes 10] [--share 0.7] [--workers 1] [--write]

First a 10 s closed-loop run finds the capacity of E2 (authz + processor masking an 8 KB JSON
request and response, audit on); then the paced generator offers ``share`` of it for
``minutes``, in 30 s segments, sampling each worker's RSS after each. At the end every served
request must have exactly one closing audit record, and the trail must verify. ``--write``
records the table in bench/RESULTS.md and the RSS curve in bench/soak.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from harness import loadavg, post_script, wrk  # noqa: E402
from paced import run as paced  # noqa: E402
from run import SCENARIOS  # noqa: E402
from stack import Stack, running  # noqa: E402
from workload import chat_request  # noqa: E402

from extproc.audit.read import read_events  # noqa: E402
from extproc.audit.verify import verify  # noqa: E402

SEGMENT_SECONDS = 30.0
AUDIT_KEY = b"a" * 40


@dataclass
class Soak:
    capacity_rps: float
    rate: float
    segments: list[dict[str, float]] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    requests: int = 0
    ok: int = 0
    errors: int = 0
    audit_records: int = 0
    verified: bool = False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(
    minutes: float,
    share: float,
    workers: int,
    root: Path,
    segment: float = SEGMENT_SECONDS,
    rate: float | None = None,
) -> Soak:
    """``rate`` fixes the offered rate instead of measuring capacity (the short test variant)."""
    scenario = next(s for s in SCENARIOS if s.id == "E2")
    with running(root, [scenario], workers=workers, envoy_concurrency=1) as stack:
        body_file = root / "body.json"
        body_file.write_bytes(chat_request())
        url = stack.url(scenario)
        script = post_script(root / "post.lua", body_file)
        if rate is None:
            capacity = wrk(url, 16, 10, stack.headers, script).rps
            rate = round(capacity * share, 1)
        else:
            capacity = rate / share
        result = Soak(capacity_rps=capacity, rate=rate)
        time.sleep(1.0)
        before = _audit_records(root / "audit")  # the capacity run's exchanges
        workers_by_name = _workers(stack)
        started = time.monotonic()
        deadline = started + minutes * 60
        while time.monotonic() < deadline:
            length = min(segment, deadline - time.monotonic())
            if length < 1:
                break
            run = paced(url, result.rate, length, headers=stack.headers,
                        body=body_file.read_bytes())  # fmt: skip
            result.requests += run.requests
            result.ok += run.completed - run.non2xx
            result.errors += run.non2xx + run.errors + run.unfinished
            result.segments.append(
                {"t": round(time.monotonic() - started, 1), "rps": run.achieved_rps,
                 "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
            )  # fmt: skip
            for name, pid in workers_by_name.items():
                result.rss_mb.setdefault(name, []).append(round(rss_mb(pid), 1))
        time.sleep(1.0)  # the writers flush every few ms; give the last batch time
        result.audit_records = _audit_records(root / "audit") - before
        result.verified = verify([root / "audit"], AUDIT_KEY).ok
    return result


def _audit_records(audit: Path) -> int:
    """Closing records of exchanges (one per exchange the processor saw)."""
    return sum(1 for event in read_events([audit]) if event.get("service") == "processor")


def _workers(stack: Stack) -> dict[str, int]:
    """The worker processes of each service (not multiprocessing's resource tracker)."""
    workers = {}
    for service in ("authz", "processor"):
        pids = [p for p in stack.pids[service] if b"resource_tracker" not in _cmdline(p)]
        workers.update({f"{service}-{index}": pid for index, pid in enumerate(pids)})
    return workers


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def chart(result: Soak, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    times = [segment["t"] / 60 for segment in result.segments]
    for name, values in sorted(result.rss_mb.items()):
        axis.plot(times[: len(values)], values, marker="o", label=name)
    axis.set_xlabel("minutes")
    axis.set_ylabel("RSS (MB)")
    axis.set_ylim(bottom=0)
    axis.set_title(
        f"Soak: {result.rate:.0f} req/s ({result.rate / result.capacity_rps:.0%} of capacity), "
        f"{result.ok} served, {result.errors} errors"
    )
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--share", type=float, default=0.7, help="of the measured capacity")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="record RESULTS.md and soak.png")
    args = parser.parse_args()
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="extproc-soak-") as directory:
        result = soak(args.minutes, args.share, args.workers, Path(directory))
    summary = {
        "capacity_rps": result.capacity_rps,
        "rate": result.rate,
        "requests": result.requests,
        "ok": result.ok,
        "errors": result.errors,
        "audit_records": result.audit_records,
        "verified": result.verified,
        "rss_mb": {k: [v[0], max(v), v[-1]] for k, v in result.rss_mb.items()},
        "p99_ms": [s["p99_ms"] for s in result.segments],
        "loadavg": [load_start, loadavg()],
    }
    if args.write:
        chart(result, BENCH_DIR / "soak.png")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
