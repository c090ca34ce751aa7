"""``extproc demo ...``: the demo's parts one by one, for a user who runs them apart (Docker
Compose runs each in its own container): the state directory, the issuer, the model and the
Envoy config that joins them."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from pathlib import Path
from typing import Any

from extproc.errors import ExtprocError


def register(commands: Any) -> None:
    """Add ``init``, ``issuer``, ``model`` and ``envoy-config`` to the ``demo`` subparsers."""
    init = commands.add_parser(
        "init", help="write keys, a GeoIP database and a config that `extproc check` accepts"
    )
    init.add_argument("directory", type=Path)
    where = init.add_mutually_exclusive_group()
    where.add_argument(
        "--issuer-port", type=int, default=None, help="the demo issuer's port (default 18443)"
    )
    where.add_argument(
        "--issuer-url",
        default=None,
        help="the issuer's URL as the services reach it, e.g. http://issuer:18443",
    )
    init.set_defaults(run=_init)

    issuer = commands.add_parser("issuer", help="run the development OIDC issuer alone")
    issuer.add_argument("--state-dir", type=Path, required=True, help="e.g. DIR/issuer")
    issuer.add_argument("--host", default="127.0.0.1")
    issuer.add_argument("--port", type=int, default=18443)
    issuer.add_argument(
        "--public-url", default=None, help="the URL tokens name (default http://HOST:PORT)"
    )
    issuer.set_defaults(run=_issuer)

    model = commands.add_parser("model", help="run the demo OpenAI-style model alone")
    model.add_argument("--host", default="127.0.0.1")
    model.add_argument("--port", type=int, default=18080)
    model.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="answer 401 unless the request carries this key (as the gateway injects it)",
    )
    model.add_argument("--record", type=Path, default=None, help="append what it saw (JSONL)")
    model.set_defaults(run=_model)

    envoy = commands.add_parser(
        "envoy-config", help="render the demo Envoy config for given service addresses"
    )
    envoy.add_argument("output", type=Path)
    envoy.add_argument("--listen-host", default="127.0.0.1")
    envoy.add_argument("--listener-port", type=int, default=10000)
    envoy.add_argument("--admin-port", type=int, default=19901)
    for name, default in (
        ("authz", "127.0.0.1:50051"),
        ("processor", "127.0.0.1:50061"),
        ("model", "127.0.0.1:18080"),
    ):
        envoy.add_argument(
            f"--{name}",
            action="append",
            default=None,
            metavar="HOST:PORT",
            help=f"an endpoint (repeat for each worker; default {default})",
        )
    envoy.set_defaults(run=_envoy_config)


def _init(args: argparse.Namespace) -> int:
    from extproc.demo.invocation import extproc_command
    from extproc.demo.state import DEFAULT_ISSUER_PORT, default_issuer_url, init_demo_state

    issuer_url = args.issuer_url or default_issuer_url(args.issuer_port or DEFAULT_ISSUER_PORT)
    config = init_demo_state(args.directory, issuer_url)
    here = shlex.quote(str(args.directory))
    cli = extproc_command()
    print(
        f"demo state in {args.directory} (issuer {issuer_url})\n"
        f"  check it: {cli} check {shlex.quote(str(config))}\n"
        f"  run it:   {cli} up --state-dir {here}"
        + ("" if args.issuer_port is None else f" --issuer-port {args.issuer_port}")
    )
    return 0


def _issuer(args: argparse.Namespace) -> int:
    from extproc.demo.issuer import DevIssuer

    issuer = DevIssuer(args.state_dir, host=args.host, port=args.port, public_url=args.public_url)
    issuer.start()
    print(f"demo issuer {issuer.issuer_url} (listening on {args.host}:{issuer.port})", flush=True)
    _wait_for_signal()
    issuer.stop()
    return 0


def _model(args: argparse.Namespace) -> int:
    from extproc.demo.upstream import DemoModel

    key = None
    if args.key_file is not None:
        try:
            key = args.key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ExtprocError(f"cannot read {args.key_file}: {exc.strerror}") from None
    model = DemoModel(host=args.host, port=args.port, record_path=args.record, required_key=key)
    model.start()
    print(f"demo model on {model.url}", flush=True)
    _wait_for_signal()
    model.stop()
    return 0


def _envoy_config(args: argparse.Namespace) -> int:
    from extproc.demo.up import shipped_envoy_config
    from extproc.envoy_runner import render_config

    def endpoints(values: list[str] | None, default: str) -> list[tuple[str, int]]:
        out = []
        for value in values or [default]:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ExtprocError(f"expected HOST:PORT, got {value!r}")
            out.append((host, int(port)))
        return out

    model = endpoints(args.model, "127.0.0.1:18080")
    written = render_config(
        shipped_envoy_config("demo.yaml"),
        args.output,
        listener_ports={"inference": args.listener_port},
        listen_host=args.listen_host,
        admin_port=args.admin_port,
        clusters={
            "extproc_authz": endpoints(args.authz, "127.0.0.1:50051"),
            "extproc_processor": endpoints(args.processor, "127.0.0.1:50061"),
            "model_eu": model,
            "model_us": model,
        },
    )
    print(written)
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    stop.wait()
