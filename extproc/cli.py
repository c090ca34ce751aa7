"""The ``extproc`` command. Each subcommand parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extproc.cli_help import document
from extproc.demo.commands import register as register_demo
from extproc.errors import ConfigError, ExtprocError

DEFAULT_STATE_DIR = Path(".extproc")
_DESCRIPTION = (
    "A policy enforcement point beside Envoy: the authz and processor services, their config, "
    "policy tests, the audit trail and approvals. `extproc COMMAND --help` explains a command."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except ConfigError as exc:
        for error in exc.errors:  # every problem, one per line: file:line: key: message
            print(error, file=sys.stderr)
        return 1
    except ExtprocError as exc:
        print(f"extproc: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _version() -> str:
    try:
        return importlib.metadata.version("extproc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _address(text: str) -> str:
    """An IPv4 or IPv6 address, as Envoy computes a client's (a typo is not 'unknown')."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None
    return text


def _whole_number(text: str, lowest: int, highest: int, rule: str) -> int:
    """``text`` as an integer in ``lowest``..``highest``, or a usage error saying ``rule``."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not lowest <= number <= highest:
        raise argparse.ArgumentTypeError(f"{rule}, got {number}")
    return number


def _port(text: str) -> int:
    return _whole_number(text, 1, 65535, "a port is 1 to 65535")


def _positive_count(text: str) -> int:
    return _whole_number(text, 1, sys.maxsize, "must be at least 1")


def _positive_seconds(text: str) -> int:
    return _whole_number(text, 1, sys.maxsize, "must be more than 0 seconds")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extproc", description=_DESCRIPTION)
    parser.add_argument(
        "--version", action="version", version=f"extproc {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(metavar="COMMAND")

    check = commands.add_parser(
        "check", help="validate a config; print every error (file:line: key: message), exit 1"
    )
    check.add_argument("config", type=Path)
    check.add_argument(
        "--fetch-keys", action="store_true", help="also fetch every issuer's keys (needs network)"
    )
    check.set_defaults(run=_check)

    explain = commands.add_parser("explain", help="show how a request would be decided, and why")
    explain.add_argument("--config", type=Path, required=True)
    explain.add_argument("--token", default=None, help="the caller's JWT (omit for none)")
    explain.add_argument(
        "--source-ip", required=True, type=_address, help="the client address Envoy computed"
    )
    explain.add_argument("--path", required=True)
    explain.add_argument("--method", default="POST")
    explain.add_argument("--host", default="localhost")
    explain.add_argument("--header", action="append", default=[], metavar="K=V")
    explain.add_argument(
        "--ext",
        action="append",
        default=[],
        metavar="K=V",
        help="a route context_extension, e.g. target_region=eu",
    )
    explain.add_argument("--body-file", type=Path, default=None)
    explain.add_argument(
        "--jwks",
        type=Path,
        default=None,
        help="verify tokens with the keys in this JWKS file instead of fetching the issuers' "
        "(offline; the demo's is STATE_DIR/issuer/jwks.json)",
    )
    explain.set_defaults(run=_explain)

    test = commands.add_parser(
        "test", help="run policy test suites against a config, without a server"
    )
    test.add_argument("suites", nargs="+", type=Path, metavar="SUITE.yaml")
    test.add_argument(
        "--config", type=Path, default=None, help="the config under test (default: the suite's)"
    )
    test.add_argument("--junit", type=Path, default=None, help="also write JUnit XML here")
    test.set_defaults(run=_test)

    schema = commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(run=_schema)

    demo = commands.add_parser("demo", help="the demo's parts: state, issuer, model, Envoy config")
    register_demo(demo.add_subparsers(metavar="ACTION"))

    serve = commands.add_parser("serve", help="run a gRPC service for Envoy")
    serve.add_argument("service", choices=["authz", "processor", "approvals"])
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=50051, help="first port; worker i uses port+i")
    serve.add_argument("--workers", type=_positive_count, default=os.cpu_count() or 1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--reload-interval", type=float, default=1.0, metavar="SECONDS")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics (all workers) and /healthz on this port (default: off)",
    )
    serve.set_defaults(run=_serve)

    up = commands.add_parser("up", help="run Envoy, the services and a demo model on defaults")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    up.add_argument("--port", type=int, default=10000, help="Envoy's listener port")
    up.add_argument("--admin-port", type=int, default=19901)
    up.add_argument("--model-port", type=int, default=18080)
    up.add_argument("--authz-port", type=int, default=50051)
    up.add_argument("--processor-port", type=int, default=50061)
    up.add_argument("--approvals-port", type=int, default=50071)
    up.add_argument("--issuer-port", type=int, default=18443)
    up.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    up.set_defaults(run=_up)

    mask = commands.add_parser("mask", help="mask stdin to stdout (try masking rules)")
    mask.add_argument("--config", type=Path, default=None, help="default: built-in detectors")
    mask.add_argument("--profile", default=None)
    mask.add_argument("--content-type", default=None, help="default: sniffed (JSON, SSE, text)")
    mask.add_argument("--direction", choices=["request", "response"], default="request")
    mask.add_argument(
        "--report", action="store_true", help="print each finding as a JSON line on stderr"
    )
    mask.set_defaults(run=_mask)

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(metavar="ACTION")
    audit_verify = audit_commands.add_parser(
        "verify", help="check every chain; name every bad record and every recorded gap"
    )
    _audit_trail_arguments(audit_verify)
    audit_verify.add_argument(
        "--heads",
        type=Path,
        default=None,
        metavar="DIR",
        help="copies of the chains' .head files kept elsewhere: every chain they name must be "
        "here and still hold the record its copy names (finds a chain removed or rolled back "
        "together with its head)",
    )
    audit_verify.set_defaults(run=_audit_verify)
    audit_report = audit_commands.add_parser(
        "report", help="verify the trail and summarise a time window (HTML or JSON)"
    )
    _audit_trail_arguments(audit_report)
    audit_report.add_argument("--since", default=None, help="e.g. 2026-11-01 (UTC, inclusive)")
    audit_report.add_argument("--until", default=None, help="e.g. 2026-11-30T12:00 (inclusive)")
    audit_report.add_argument("--format", choices=["html", "json"], default="html")
    audit_report.add_argument(
        "--output", "-o", type=Path, default=None, help="write here (default: standard output)"
    )
    audit_report.set_defaults(run=_audit_report)
    audit_replay = audit_commands.add_parser(
        "replay", help="print (or re-stream) one recorded exchange, after checking its digest"
    )
    audit_replay.add_argument("id", help="the exchange's request id (or decision id)")
    _audit_trail_arguments(audit_replay)
    audit_replay.add_argument(
        "--stream", action="store_true", help="write the response as the client got it, in time"
    )
    audit_replay.add_argument(
        "--speed", type=float, default=1.0, help="with --stream: 2 is twice as fast, 0 no waits"
    )
    audit_replay.add_argument("--json", action="store_true", help="print the recording as JSON")
    audit_replay.set_defaults(run=_audit_replay)
    audit_prune = audit_commands.add_parser(
        "prune", help="apply the recordings' retention now (oldest first), signing each removal"
    )
    _audit_trail_arguments(audit_prune)
    audit_prune.add_argument(
        "--max-age", default=None, help="e.g. 30d, 12h (default: the config's recording.max_age)"
    )
    audit_prune.add_argument(
        "--max-total-bytes", type=int, default=None, help="default: the config's"
    )
    audit_prune.set_defaults(run=_audit_prune)

    _approvals_parser(commands)

    token = commands.add_parser("token", help="print a token from the demo issuer")
    token.add_argument("--sub", required=True)
    token.add_argument("--groups", default="", help="comma separated")
    token.add_argument("--claim", action="append", default=[], metavar="K=V")
    token.add_argument("--ttl", type=_positive_seconds, default=3600, help="seconds")
    token.add_argument("--audience", default="extproc-demo")
    token.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    token.set_defaults(run=_token)
    document(parser)
    return parser


# -- extproc approvals: a client of the approvals API ---------------------------------------------
def _approvals_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default="127.0.0.1:50071", help="the approvals service")
    common.add_argument("--token", default=None, help="your OIDC token (default: $EXTPROC_TOKEN)")
    common.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")
    common.add_argument("--json", action="store_true", help="print the API's messages as JSON")
    common.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    approvals = commands.add_parser("approvals", help="list and review approval requests")
    actions = approvals.add_subparsers(metavar="ACTION", dest="action")
    listing = actions.add_parser("list", parents=[common], help="approvals you may see")
    listing.add_argument(
        "--status", choices=["pending", "approved", "denied", "expired", "revoked"]
    )
    listing.add_argument("--limit", type=int, default=100)
    show = actions.add_parser("show", parents=[common], help="one approval and its reviews")
    approve = actions.add_parser("approve", parents=[common], help="approve a pending request")
    approve.add_argument("--ttl", default=None, help="grant TTL, e.g. 15m (default: the rule's)")
    deny = actions.add_parser("deny", parents=[common], help="deny a pending request")
    revoke = actions.add_parser("revoke", parents=[common], help="end a grant or withdraw")
    for action in (show, approve, deny, revoke):
        action.add_argument("id", help="the approval id (apr_...)")
    for action in (approve, deny, revoke):
        action.add_argument("--reason", default=None, help="required to deny or revoke")
    watch = actions.add_parser("watch", parents=[common], help="follow changes as they happen")
    watch.add_argument("--since", type=int, default=0, metavar="VERSION", help="default: now")
    for action in (listing, show, approve, deny, revoke, watch):
        action.set_defaults(run=_approvals)


def _approvals(args: argparse.Namespace) -> int:
    from extproc.approvals.client import run_approvals_command

    return run_approvals_command(args, sys.stdout)


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ExtprocError(f"{what} must look like key=value, got {value!r}")
        out[key.strip()] = rest
    return out


def _check(args: argparse.Namespace) -> int:
    from extproc.app import build_authz
    from extproc.settings import load_config

    config = load_config(args.config)
    runtime = build_authz(config, load_keys=False)  # opens and verifies the GeoIP database
    try:
        if args.fetch_keys:
            failures = {k: v for k, v in runtime.keys.load_all().items() if v}
            for issuer, error in failures.items():
                print(f"{args.config}: issuer {issuer}: {error}", file=sys.stderr)
            if failures:
                return 1
    finally:
        runtime.close()
    policy = config.policy
    print(
        f"{args.config}: OK (revision {config.revision}): "
        f"{len(config.identity.issuers)} issuer(s), {len(policy.rules)} rule(s), "
        f"{len(config.geo.regions)} region(s), default {policy.default.effect}"
        + ("" if policy.enforce else ", policy in dry-run")
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    from extproc.app import build_authz
    from extproc.decide.explain import explain
    from extproc.decide.request import RequestView
    from extproc.settings import load_config

    headers = {k.lower(): v for k, v in _pairs(args.header, "--header").items()}
    if args.token:
        headers["authorization"] = f"Bearer {args.token}"
    view = RequestView(
        request_id="explain",
        method=args.method.upper(),
        path=args.path.split("?", 1)[0],
        host=args.host,
        source_address=args.source_ip,
        headers=headers,
        route=_pairs(args.ext, "--ext"),
        body=args.body_file.read_bytes() if args.body_file else None,
    )
    config = load_config(args.config)
    fetch = _offline_keys(config, args.jwks) if args.jwks is not None else None
    runtime = build_authz(config, fetch_json=fetch) if fetch else build_authz(config)
    try:
        answer = explain(runtime.authorizer, view, sys.stdout, runtime.keys.refresh)
    finally:
        runtime.close()
    return 0 if answer.allowed else 3


def _schema(_args: argparse.Namespace) -> int:
    from extproc.settings import config_schema_text

    sys.stdout.buffer.write(config_schema_text().encode("utf-8"))
    sys.stdout.flush()
    return 0


def _test(args: argparse.Namespace) -> int:
    from extproc.policytest.report import summary, write_junit, write_text
    from extproc.policytest.runner import run_suite

    everything = []
    for suite in args.suites:
        results = run_suite(suite, args.config)
        write_text(suite, results, sys.stdout)
        everything.append((suite, results))
    flat = [result for _suite, results in everything for result in results]
    print(summary(flat))
    if args.junit is not None:
        write_junit(everything, args.junit)
    return 0 if all(result.passed for result in flat) else 1


def _offline_keys(config: Any, jwks: Path) -> Any:
    """A fetch that answers every issuer's discovery and JWKS request from one local file."""
    import orjson

    try:
        keys = orjson.loads(jwks.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ExtprocError(f"cannot read the JWKS file {jwks}: {exc}") from None

    def fetch(url: str, _timeout: float) -> Any:
        for issuer in config.identity.issuers:
            if url == issuer.discovery_url:
                return {"issuer": issuer.issuer, "jwks_uri": f"file:{jwks}"}
        return keys

    return fetch


def _serve(args: argparse.Namespace) -> int:
    from extproc.server import serve

    return serve(
        args.service,
        args.config,
        host=args.host,
        port=args.port,
        workers=max(1, args.workers),
        log_level=args.log_level,
        reload_interval=args.reload_interval,
        metrics_port=args.metrics_port,
    )


def _up(args: argparse.Namespace) -> int:
    from extproc.demo.up import DemoPorts, run_demo

    ports = DemoPorts(
        listener=args.port,
        admin=args.admin_port,
        model=args.model_port,
        authz=args.authz_port,
        processor=args.processor_port,
        approvals=args.approvals_port,
        issuer=args.issuer_port,
    )
    return run_demo(args.state_dir, ports, workers=max(1, args.workers))


def _mask(args: argparse.Namespace) -> int:
    from extproc.masking.cli import masking_config, run_mask

    config = masking_config(args.config)
    if args.profile is not None and args.profile not in config.profiles:
        known = ", ".join(sorted(config.profiles))
        raise ExtprocError(f"no masking profile named {args.profile!r} (defined: {known})")
    return run_mask(
        config,
        profile=args.profile,
        content_type=args.content_type,
        direction=args.direction,
        report=args.report,
        stdin=sys.stdin.buffer,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr,
    )


def _audit_trail_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, help="default: ./.extproc/audit")
    parser.add_argument("--config", type=Path, default=None, help="read the key from it")
    parser.add_argument("--key-file", type=Path, default=None)
    parser.add_argument("--key-env", default="EXTPROC_AUDIT_KEY")


def _audit_verify(args: argparse.Namespace) -> int:
    from extproc.audit.verify import run_verify_cli

    paths, key = _audit_trail(args)
    return run_verify_cli(paths, key, sys.stdout, heads=args.heads)


def _audit_report(args: argparse.Namespace) -> int:
    import orjson

    from extproc.audit.report import as_json, build_report, render_html

    paths, key = _audit_trail(args)
    links_from = None if args.output is None else args.output.resolve().parent
    report = build_report(paths, key, since=args.since, until=args.until, links_from=links_from)
    if args.format == "json":
        data = orjson.dumps(as_json(report), option=orjson.OPT_INDENT_2) + b"\n"
    else:
        data = render_html(report).encode("utf-8")
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.output.write_bytes(data)
        print(f"{args.output}: {report.events} events, verified: {report.verification.ok}")
    return 0 if report.verification.ok else 1


def _audit_replay(args: argparse.Namespace) -> int:
    import orjson

    from extproc.audit.replay import ReplayRefused, load_recording, print_exchange, stream_response

    if args.speed < 0:
        raise ExtprocError("--speed must be 0 (no waits) or more")
    paths, key = _audit_trail(args)
    try:
        event, document = load_recording(paths, args.id, key)
        if args.stream:
            stream_response(document, sys.stdout.buffer, args.speed)
        elif args.json:
            data = {"event": event, "recording": document}
            sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            print_exchange(event, document, sys.stdout)
    except ReplayRefused as exc:
        print(f"extproc: {exc}", file=sys.stderr)
        return 1
    return 0


def _audit_prune(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from extproc.audit.chain import Sealer
    from extproc.audit.recording import RecordingConfig
    from extproc.audit.recording_files import prune
    from extproc.config.durations import parse_duration

    paths, key = _audit_trail(args)
    config = RecordingConfig(max_age_seconds=0)
    if args.config is not None:
        from extproc.settings import load_config

        audit = load_config(args.config).audit
        assert audit is not None  # _audit_trail refused a config without one
        config = audit.recording
    if args.max_age is not None:
        try:
            seconds = parse_duration(args.max_age)
        except ValueError as exc:
            raise ExtprocError(f"--max-age: {exc}") from None
        config = replace(config, max_age_seconds=seconds)
    if args.max_total_bytes is not None:
        config = replace(config, max_total_bytes=args.max_total_bytes)
    if config.max_age_seconds <= 0 and config.max_total_bytes <= 0:
        raise ExtprocError("no retention limit: pass --config, --max-age or --max-total-bytes")
    for directory in paths:
        pruned = prune(directory, Sealer(key), config)
        if pruned.busy:
            print(f"{directory}: another process is applying retention; try again")
            return 1
        print(
            f"{directory}: removed {pruned.by_age + pruned.by_size} recordings "
            f"({pruned.by_age} by age, {pruned.by_size} by total size, {pruned.bytes} bytes); "
            f"kept {pruned.kept} ({pruned.kept_bytes} bytes)"
        )
    return 0


def _audit_trail(args: argparse.Namespace) -> tuple[list[Path], bytes]:
    """The trail's paths and its key, from the arguments (or the demo's defaults)."""
    paths = list(args.paths) or [DEFAULT_STATE_DIR / "audit"]
    if args.config is not None:
        from extproc.settings import load_config

        audit = load_config(args.config).audit
        if audit is None:
            raise ExtprocError(f"{args.config}: no 'audit' section")
        key = audit.key
        if not args.paths:
            paths = [audit.directory]
    elif args.key_file is not None:
        key = args.key_file.read_bytes().strip()
    elif os.environ.get(args.key_env):
        key = os.environ[args.key_env].encode()
    elif (DEFAULT_STATE_DIR / "keys" / "audit.key").is_file():
        key = (DEFAULT_STATE_DIR / "keys" / "audit.key").read_bytes().strip()
    else:
        raise ExtprocError("no audit key: pass --config, --key-file or set EXTPROC_AUDIT_KEY")
    if len(key) < 32:
        raise ExtprocError("the audit key must be at least 32 bytes")
    return paths, key


def _token(args: argparse.Namespace) -> int:
    from extproc.demo.issuer import mint_from_state

    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    token = mint_from_state(
        args.state_dir / "issuer",
        sub=args.sub,
        groups=groups,
        audience=args.audience,
        ttl=args.ttl,
        extra_claims=_pairs(args.claim, "--claim"),
    )
    print(token)
    return 0
