"""``extproc approvals``: the approvals API from a terminal.

Every action sends the caller's own OIDC token (``--token`` or ``$EXTPROC_TOKEN``) to the
service at ``--address`` (default: where ``extproc up`` runs it). Errors are one line on stderr
with the stable code in brackets, e.g. ``extproc: you cannot review your own request
(self_approval)``; the exit status is 1. Ids are checked for shape before any call. ``--json``
prints the API's messages as JSON (``watch``: one object per line).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, TextIO

import grpc
import orjson

from extproc.approval.ids import check_approval_id
from extproc.approvals.api import approvals_pb2 as pb
from extproc.approvals.api import approvals_pb2_grpc
from extproc.approvals.api.convert import ERROR_METADATA
from extproc.approvals.display import (
    approval_details,
    approval_line,
    as_json,
    change_line,
    outcome_line,
)
from extproc.config.durations import parse_duration
from extproc.errors import ApprovalError, Code, ExtprocError

DEFAULT_ADDRESS = "127.0.0.1:50071"
TOKEN_ENV = "EXTPROC_TOKEN"  # noqa: S105  (the name of the variable, not a token)
Metadata = tuple[tuple[str, str], ...]
Action = Callable[[Any, argparse.Namespace, Metadata, TextIO], int]


def run_approvals_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``args.action`` against the service; raises ``ExtprocError`` with a one-line reason."""
    token = (args.token or os.environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise ExtprocError(
            f"no token: pass --token or set {TOKEN_ENV} ({Code.MISSING_TOKEN})",
            code=Code.MISSING_TOKEN,
        )
    action = ACTIONS[args.action]
    if getattr(args, "id", None) is not None:
        _check_id(args.id)
    credentials = grpc.ssl_channel_credentials() if args.tls else None
    channel = (
        grpc.secure_channel(args.address, credentials)
        if credentials is not None
        else grpc.insecure_channel(args.address)
    )
    with channel:
        stub = approvals_pb2_grpc.ApprovalsStub(channel)
        try:
            return action(stub, args, (("authorization", f"Bearer {token}"),), out)
        except grpc.RpcError as exc:
            raise ExtprocError(_one_line(exc, args.address, args.timeout)) from None


def _list(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    request = pb.ListRequest(status=args.status or "", limit=args.limit)
    approvals = stub.List(request, metadata=metadata, timeout=args.timeout).approvals
    if args.json:
        _json(out, [as_json(a) for a in approvals])
        return 0
    if not approvals:
        print("no approvals", file=out)
    for approval in approvals:
        print(approval_line(approval), file=out)
    return 0


def _show(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    approval = stub.Get(pb.GetRequest(id=args.id), metadata=metadata, timeout=args.timeout)
    _print(out, args, approval, approval_details(approval))
    return 0


def _approve(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    ttl = 0.0
    if args.ttl is not None:
        try:
            ttl = parse_duration(args.ttl)
        except ValueError as exc:
            raise ExtprocError(f"--ttl: {exc} ({Code.GRANT_TTL_INVALID})") from None
        if ttl <= 0:
            raise ExtprocError(f"--ttl must be more than 0 ({Code.GRANT_TTL_INVALID})")
    request = pb.ApproveRequest(id=args.id, reason=args.reason or "", ttl_seconds=ttl)
    approval = stub.Approve(request, metadata=metadata, timeout=args.timeout)
    _print(out, args, approval, outcome_line(approval))
    return 0


def _deny(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    reason = _reason(args, "a denial")
    approval = stub.Deny(
        pb.DenyRequest(id=args.id, reason=reason), metadata=metadata, timeout=args.timeout
    )
    _print(out, args, approval, outcome_line(approval))
    return 0


def _revoke(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    reason = _reason(args, "a revocation")
    approval = stub.Revoke(
        pb.RevokeRequest(id=args.id, reason=reason), metadata=metadata, timeout=args.timeout
    )
    _print(out, args, approval, outcome_line(approval))
    return 0


def _watch(stub: Any, args: argparse.Namespace, metadata: Metadata, out: TextIO) -> int:
    """Until interrupted (or the token expires: the service ends the stream)."""
    for change in stub.Watch(pb.WatchRequest(since_version=args.since), metadata=metadata):
        if args.json:
            out.write(orjson.dumps(as_json(change)).decode() + "\n")
        else:
            print(change_line(change), file=out)
        out.flush()
    return 0


ACTIONS: dict[str, Action] = {
    "list": _list,
    "show": _show,
    "approve": _approve,
    "deny": _deny,
    "revoke": _revoke,
    "watch": _watch,
}


def _check_id(text: str) -> None:
    try:
        check_approval_id(text)
    except ApprovalError as exc:
        raise ExtprocError(f"{exc.reason} ({exc.code})", code=exc.code) from None


def _reason(args: argparse.Namespace, what: str) -> str:
    reason = (args.reason or "").strip()
    if not reason:
        raise ExtprocError(f"{what} needs a reason: pass --reason ({Code.REASON_REQUIRED})")
    return reason


def _print(out: TextIO, args: argparse.Namespace, message: pb.Approval, text: str) -> None:
    if args.json:
        _json(out, as_json(message))
    else:
        print(text, file=out)


def _json(out: TextIO, value: Any) -> None:
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _one_line(exc: grpc.RpcError, address: str, timeout: float) -> str:
    status: Any = exc
    code = dict(status.trailing_metadata() or ()).get(ERROR_METADATA)
    details = str(status.details() or "")
    if code:
        reason = details.removeprefix(f"{code}: ")
        return f"{reason} ({code})"
    if status.code() == grpc.StatusCode.UNAVAILABLE:
        return (
            f"cannot reach the approvals service at {address} "
            "(is `extproc serve approvals` running there?)"
        )
    if status.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the approvals service at {address} did not answer within {timeout:g}s"
    return f"the approvals service failed: {status.code().name.lower()}: {details}"
