"""The extproc benchmark, one command: the real Envoy and a load generator on 127.0.0.1, every
scenario in the same run and the same Envoy process, so the ratios between them hold.

    S0     Envoy passing requests through to a direct_response upstream (the ceiling)
    S1     Envoy's native jwt_authn (verified tokens cached) + rbac on the groups claim
    E1     Envoy + extproc authz (identity, GeoIP region, a 20-rule policy)
    E2     E1 + extproc processor masking an 8 KB JSON request and an 8 KB JSON response, audit on
    S0sse  Envoy passing through a stream of 200 SSE events (E3's ceiling)
    E3     E2 with the 200-event SSE response of a streaming upstream
    F1, F2 E1's and E2's paths with constant-answer grpc.aio servers in place of extproc's:
           the floor gRPC itself puts under the services' CPU per request

Each scenario runs closed-loop at saturation (wrk), then open-loop at a fixed rate
(bench/paced.py, latency from each request's due time). Then, in-process: one Check, the policy
alone, and masking throughput. S0 is measured again at the end to show drift.

    python bench/run.py [--quick] [--write] [--workers 1] [--connections 16] [--duration 10]
                        [--envoy-concurrency 1] [--rate 500]
                        [--scenarios S0,S1,E1,E2,S0sse,E3,F1,F2]

The full run writes bench/RESULTS.md (the section between its markers) and bench/results.png;
--quick writes them only with --write. The last line of the output is one JSON object.
Exits 1 when any response was not a 2xx (the numbers are then not written).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WrkResult, cpu_model, ensure_wrk, loadavg, post_script, wrk
from inprocess import authz_timings, masking_timings
from paced import PacedResult
from report import Run, ScenarioResult, chart, markdown, splice, summary
from stack import Scenario, Stack, running
from workload import chat_request

from extproc.audit.verify import verify

BENCH = Path(__file__).resolve().parent

SCENARIOS = (
    Scenario("S0", "Envoy pass-through", (), "backend"),
    Scenario("S1", "Envoy jwt_authn + rbac", ("jwt",), "backend"),
    Scenario("E1", "Envoy + extproc authz", ("authz",), "backend"),
    Scenario("E2", "E1 + processor, 8 KB JSON both ways, audit", ("authz", "processor"), "backend"),
    Scenario("S0sse", "Envoy pass-through, 200 SSE events", (), "sse"),
    Scenario("E3", "E2 with a 200-event SSE response", ("authz", "processor"), "sse"),
)
# The same paths with constant-answer gRPC servers (bench/floor_server.py) in place of extproc's:
# what grpc.aio alone costs per request, the floor under the services' CPU per request.
FLOOR_SCENARIOS = (
    Scenario("F1", "E1's path, authz a constant gRPC answer", ("authz",), "backend"),
    Scenario(
        "F2", "E2's path, both services constant gRPC answers", ("authz", "processor"), "backend"
    ),
)


@dataclass(frozen=True)
class Settings:
    duration: float  # seconds of each saturation run and of each fixed-rate run
    warmup: float
    grace: float  # how long a fixed-rate run waits for answers after its last due request
    connections: int
    rate: float
    calls: int  # in-process calls per operation


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, under 3 minutes")
    parser.add_argument("--write", action="store_true", help="with --quick: write the results")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per service")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, help="seconds per run (10; --quick 3)")
    parser.add_argument("--envoy-concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=500.0, help="fixed rate, req/s (0: skip)")
    parser.add_argument(
        "--scenarios", default=",".join(s.id for s in (*SCENARIOS, *FLOOR_SCENARIOS))
    )
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    if args.quick:
        return Settings(args.duration or 3, 1, 2, args.connections, args.rate, 2_000)
    return Settings(args.duration or 10, 3, 5, args.connections, args.rate, 20_000)


def selected(names: str, among: tuple[Scenario, ...] = SCENARIOS) -> list[Scenario]:
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = set(wanted) - {s.id for s in (*SCENARIOS, *FLOOR_SCENARIOS)}
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return [s for s in among if s.id in wanted]


# -- one scenario ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Body:
    file: Path
    script: Path  # wrk Lua script that POSTs it


def write_bodies(root: Path) -> dict[str, Body]:
    """The request bodies by upstream: the 8 KB chat request, with ``stream`` for SSE."""
    bodies = {}
    for upstream, stream in (("backend", False), ("sse", True)):
        file = root / f"request-{upstream}.json"
        file.write_bytes(chat_request(stream=stream))
        bodies[upstream] = Body(file, post_script(root / f"post-{upstream}.lua", file))
    return bodies


def measure(
    stack: Stack, scenario: Scenario, body: Body, s: Settings, *, floor: bool = False
) -> ScenarioResult:
    url, headers = stack.url(scenario), stack.headers
    probe(stack, scenario, body, masked=not floor and "processor" in scenario.filters)
    warmup = wrk(url, s.connections, s.warmup, headers, body.script)
    cpu_before, messages_before = stack.cpu(), ext_proc_messages(stack, scenario)
    saturation = wrk(url, s.connections, s.duration, headers, body.script)
    cpu_after, messages_after = stack.cpu(), ext_proc_messages(stack, scenario)
    served = max(1, saturation.requests)
    cpu_ms = {
        name: (cpu_after[name] - cpu_before[name]) * 1000 / served for name in serving(scenario)
    }
    messages = None
    if "processor" in scenario.filters:
        messages = (messages_after - messages_before) / served
    fixed = paced(url, headers, body.file, s) if s.rate > 0 and not floor else None
    return ScenarioResult(scenario, saturation, fixed, cpu_ms, messages, warmup.errors)


def measure_each(
    stack: Stack,
    scenarios: list[Scenario],
    bodies: dict[str, Body],
    s: Settings,
    run: Run,
    *,
    floor: bool = False,
) -> None:
    for scenario in scenarios:
        result = measure(stack, scenario, bodies[scenario.upstream], s, floor=floor)
        run.results.append(result)
        print(progress(result), flush=True)


def serving(scenario: Scenario) -> list[str]:
    """The metered processes on the scenario's path (Envoy is also the JSON upstream)."""
    names = [name for name in ("authz", "processor") if name in scenario.filters]
    return [*names, "envoy", *(["sse"] if scenario.upstream == "sse" else [])]


def probe(stack: Stack, scenario: Scenario, body: Body, *, masked: bool) -> None:
    """One request before the load: the scenario answers 200, and the card number in the
    upstream's answer arrives masked exactly when extproc's processor is on the path."""
    request = urllib.request.Request(stack.url(scenario), data=body.file.read_bytes())
    for header in [*stack.headers, "content-type: application/json"]:
        name, value = header.split(": ", 1)
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read().decode(errors="replace")
    if status != 200 or ("4111 1111 1111 1111" in visible(text)) == masked:
        raise SystemExit(f"{scenario.id} does not work as described: {status} {text[:300]}")


def visible(text: str) -> str:
    """What a client reads: the body, or the content of an event stream's deltas joined."""
    if not text.startswith("data: "):
        return text
    events = [line[6:] for line in text.splitlines() if line.startswith("data: {")]
    return "".join(
        choice["delta"].get("content", "")
        for event in events
        for choice in json.loads(event)["choices"]
    )


def ext_proc_messages(stack: Stack, scenario: Scenario) -> int:
    if "processor" not in scenario.filters:
        return 0
    stats = stack.envoy_stats(f"http.{scenario.id}.ext_proc.")
    return stats.get(f"http.{scenario.id}.ext_proc.stream_msgs_sent", 0)


def paced(url: str, headers: list[str], body: Path, s: Settings) -> PacedResult:
    """A fixed-rate run in its own process (as wrk is), so this one's work does not delay it."""
    command = [
        sys.executable, str(BENCH / "paced.py"), "--url", url, "--rate", f"{s.rate:g}",
        "--duration", f"{s.duration:g}", "--connections", str(s.connections),
        "--body-file", str(body), "--grace", f"{s.grace:g}",
        "-H", "content-type: application/json",
    ]  # fmt: skip
    for header in headers:
        command += ["-H", header]
    timeout = s.duration + s.grace + 30
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)
    values = json.loads(out.stdout.strip().splitlines()[-1])
    return PacedResult(**{f.name: values[f.name] for f in fields(PacedResult)})


def progress(result: ScenarioResult) -> str:
    sat = result.saturation
    line = f"{result.scenario.id:6} {sat.rps:9,.0f} req/s  p50 {sat.p50_ms:7.2f}  p99 {sat.p99_ms:7.2f} ms"
    cpu = "  ".join(f"{name} {ms:.3f}" for name, ms in result.cpu_ms.items() if ms >= 0.0005)
    line += f"  CPU ms/req: {cpu or '-'}"
    if result.fixed is not None:
        f = result.fixed
        state = "" if f.sustained else f" OVER CAPACITY ({f.achieved_rps:,.0f}/s achieved)"
        line += f"  | at {f.rate:g}/s p50 {f.p50_ms:.2f} p99 {f.p99_ms:.2f} ms{state}"
    return line + (f"  ERRORS {result.errors}" if result.errors else "")


# -- the run --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if ensure_wrk() is None:
        return 2
    s = settings_of(args)
    scenarios = selected(args.scenarios)
    run = Run(
        date=time.strftime("%Y-%m-%d"),
        cores=os.cpu_count() or 1,
        cpu=cpu_model(),
        envoy_version="",
        envoy_concurrency=args.envoy_concurrency,
        workers=args.workers,
        connections=s.connections,
        duration=s.duration,
        warmup=s.warmup,
        rate=s.rate,
        load_start=loadavg(),
    )
    print(f"load average at start: {run.load_start}", flush=True)
    with tempfile.TemporaryDirectory(prefix="extproc-bench-") as tmp:
        root = Path(tmp)
        bodies = write_bodies(root)
        with running(
            root, scenarios, workers=args.workers, envoy_concurrency=args.envoy_concurrency
        ) as stack:
            run.envoy_version = stack.envoy_version()
            measure_each(stack, scenarios, bodies, s, run)
            run.s0_after = s0_again(stack, scenarios, bodies["backend"], s)
            run.inprocess = authz_timings(stack.config, stack.token, s.calls)
            run.inprocess += masking_timings(stack.config, s.calls)
        run.audit, audit_ok = audit_check(root / "audit")  # the processor stopped: all written
        print(run.audit, flush=True)
        floors = selected(args.scenarios, FLOOR_SCENARIOS)
        if floors:
            (root / "floor").mkdir()
            with running(
                root / "floor", floors, workers=1, envoy_concurrency=args.envoy_concurrency,
                floor=True,
            ) as stack:  # fmt: skip
                measure_each(stack, floors, bodies, s, run, floor=True)
    run.load_end = loadavg()
    print(f"load average at end: {run.load_end}", flush=True)
    publish(run, write=args.write or not args.quick)
    print(json.dumps(summary(run)))
    return 0 if run.errors == 0 and audit_ok else 1


def audit_check(directory: Path) -> tuple[str, bool]:
    """The trail the processor wrote during the run, checked as an auditor would."""
    report = verify([directory], os.environ["BENCH_AUDIT_KEY"].encode())
    events = sum(chain.events for chain in report.chains)
    state = "verifies" if report.ok else f"DOES NOT VERIFY: {report.errors or report.chains}"
    return f"audit trail: {events:,} events in {len(report.chains)} chain(s), {state}", report.ok


def s0_again(stack: Stack, scenarios: list[Scenario], body: Body, s: Settings) -> WrkResult | None:
    first = next((sc for sc in scenarios if sc.id == "S0"), None)
    if first is None or len(scenarios) == 1:
        return None
    again = wrk(stack.url(first), s.connections, s.duration, stack.headers, body.script)
    print(f"S0 again {again.rps:9,.0f} req/s", flush=True)
    return again


def publish(run: Run, *, write: bool) -> None:
    """Print the report; write RESULTS.md and the chart into bench/ when asked (and no request
    failed), else the chart into the temporary directory."""
    if write and run.errors:
        print(f"\n{run.errors} requests failed: bench/RESULTS.md is left as it was.", flush=True)
        write = False
    png = BENCH / "results.png" if write else Path(tempfile.gettempdir()) / "extproc-bench.png"
    drawn = draw(run, png)
    section = markdown(run, png.name if write and drawn else None)
    print("\n" + section, flush=True)
    if write:
        splice(BENCH / "RESULTS.md", section)
        print(f"wrote {BENCH / 'RESULTS.md'}" + (f" and {png}" if drawn else ""), flush=True)
    elif drawn:
        print(f"chart: {png}; bench/RESULTS.md unchanged (--write records)", flush=True)


def draw(run: Run, png: Path) -> bool:
    try:
        chart(run, png)
    except ImportError:
        print("matplotlib is missing (pip install -e '.[dev]'): no chart", flush=True)
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
