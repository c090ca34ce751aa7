"""The Approvals servicer (grpc.aio): who is calling, then the store's rules.

Every call must carry the caller's own OIDC token (``authorization: Bearer <jwt>`` metadata),
verified by the same ``TokenVerifier`` as any caller of the gateway. The caller sees the
approvals they requested (the same subject at the same issuer) or may review, and nothing
else: an approval they may not see is ``approval_not_found``, the same as one that does not
exist, for every call (``Approve``, ``Deny`` and ``Revoke`` check it first, in the rules, before
anything that would name the rule or the state). What the caller may do is decided
by the pure rules through the store (requester never reviews, approver groups only, ...); a
refusal ends the call with its gRPC status and stable code. Store calls run in worker threads,
so a busy SQLite file never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from extproc.approval.model import STATUSES, Approval, Person
from extproc.approval.rules import may_view
from extproc.approvals.api import approvals_pb2 as pb
from extproc.approvals.api import approvals_pb2_grpc
from extproc.approvals.api.convert import (
    ERROR_METADATA,
    approval_message,
    change_message,
    grpc_status,
)
from extproc.approvals.runtime import ApprovalsRuntime
from extproc.approvals.waiter import follow_changes
from extproc.decide.pipeline import bearer_token
from extproc.errors import ApprovalError, Code, ExtprocError, IdentityError, KeyRefreshNeeded
from extproc.identity.model import Identity
from extproc.reload import RuntimeHolder

log = logging.getLogger("extproc.approvals")
Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")
DEFAULT_LIST = 100
MAX_LIST = 1000


class ApprovalsService(approvals_pb2_grpc.ApprovalsServicer):  # type: ignore[misc]
    def __init__(self, holder: RuntimeHolder[Any]) -> None:
        self._holder = holder

    async def List(self, request: pb.ListRequest, context: Context) -> pb.ListResponse:
        async def run(runtime: ApprovalsRuntime, caller: Person) -> pb.ListResponse:
            status = request.status or None
            if (
                status is not None and status not in STATUSES
            ) or not 0 <= request.limit <= MAX_LIST:
                raise ApprovalError(
                    f"status must be one of {', '.join(STATUSES)} and limit at most {MAX_LIST}",
                    code=Code.INVALID_APPROVAL_QUERY,
                )
            since = request.since.ToNanoseconds() / 1e9 if request.HasField("since") else None
            # Visibility depends on each approval's approver groups: read a wide window, filter.
            found = await asyncio.to_thread(
                runtime.store.list, status=status, since=since, limit=MAX_LIST * 5
            )
            shown = [a for a in found if may_view(a, caller)][: request.limit or DEFAULT_LIST]
            return pb.ListResponse(approvals=[approval_message(a) for a in shown])

        return await self._serve(context, "List", run)

    async def Get(self, request: pb.GetRequest, context: Context) -> pb.Approval:
        async def run(runtime: ApprovalsRuntime, caller: Person) -> pb.Approval:
            return approval_message(await _visible(runtime, request.id, caller))

        return await self._serve(context, "Get", run)

    async def Approve(self, request: pb.ApproveRequest, context: Context) -> pb.Approval:
        async def run(runtime: ApprovalsRuntime, caller: Person) -> pb.Approval:
            approval = await asyncio.to_thread(
                runtime.store.review,
                request.id,
                caller,
                "approve",
                reason=request.reason or None,
                ttl_seconds=request.ttl_seconds or None,
                now=runtime.clock.wall(),
            )
            return _acted("reviewed", approval, caller)

        return await self._serve(context, "Approve", run)

    async def Deny(self, request: pb.DenyRequest, context: Context) -> pb.Approval:
        async def run(runtime: ApprovalsRuntime, caller: Person) -> pb.Approval:
            approval = await asyncio.to_thread(
                runtime.store.review,
                request.id,
                caller,
                "deny",
                reason=request.reason,
                ttl_seconds=None,
                now=runtime.clock.wall(),
            )
            return _acted("reviewed", approval, caller)

        return await self._serve(context, "Deny", run)

    async def Revoke(self, request: pb.RevokeRequest, context: Context) -> pb.Approval:
        async def run(runtime: ApprovalsRuntime, caller: Person) -> pb.Approval:
            approval = await asyncio.to_thread(
                runtime.store.revoke,
                request.id,
                caller,
                reason=request.reason,
                now=runtime.clock.wall(),
            )
            return _acted("revoked", approval, caller)

        return await self._serve(context, "Revoke", run)

    async def Watch(self, request: pb.WatchRequest, context: Context) -> AsyncIterator[pb.Change]:
        runtime: ApprovalsRuntime = self._holder.current
        try:
            caller, identity = await _authenticate(runtime, context)
        except ExtprocError as exc:
            await _abort(context, "Watch", exc)
            return
        clock = runtime.clock

        def expired() -> bool:  # a watch lasts as long as the token that opened it
            return clock.wall() >= identity.expires_at

        changes = follow_changes(
            lambda: self._holder.current.store,
            request.since_version or None,
            poll_interval=runtime.settings.poll_interval_seconds,
            stop=expired,
        )
        try:
            async for change in changes:
                if may_view(change.approval, caller):
                    yield change_message(change)
        except ExtprocError as exc:
            await _abort(context, "Watch", exc)
        if expired():
            await _abort(
                context, "Watch", IdentityError("your token expired", code=Code.TOKEN_EXPIRED)
            )

    async def _serve(
        self,
        context: Context,
        method: str,
        run: Callable[[ApprovalsRuntime, Person], Awaitable[R]],
    ) -> R:
        runtime: ApprovalsRuntime = self._holder.current
        try:
            caller, _identity = await _authenticate(runtime, context)
            return await run(runtime, caller)
        except ExtprocError as exc:
            failure: ExtprocError = exc
        except Exception as exc:  # a bug must not leak details; the code says what to report
            log.error(
                "approvals call failed", extra={"method": method, "error_type": type(exc).__name__}
            )
            failure = ExtprocError("the approvals service failed", code=Code.INTERNAL_ERROR)
        await _abort(context, method, failure)
        raise AssertionError("abort returned")  # grpc.aio's abort always raises


async def _authenticate(runtime: ApprovalsRuntime, context: Context) -> tuple[Person, Identity]:
    header = next(
        (
            str(value)
            for key, value in context.invocation_metadata() or ()
            if key == "authorization"
        ),
        None,
    )
    token = bearer_token(header)
    identity = runtime.verifier.verify_cached(token)
    if identity is None:
        try:
            identity = runtime.verifier.verify(token)
        except KeyRefreshNeeded as need:
            await asyncio.to_thread(runtime.keys.refresh, need.issuer_name)
            identity = runtime.verifier.verify(token, refreshed=True)
    return Person(identity.subject, identity.issuer, tuple(sorted(identity.groups))), identity


async def _visible(runtime: ApprovalsRuntime, approval_id: str, caller: Person) -> Approval:
    approval = await asyncio.to_thread(runtime.store.get, approval_id)
    if not may_view(approval, caller):
        raise ApprovalError(f"no approval {approval_id}", code=Code.APPROVAL_NOT_FOUND)
    return approval


def _acted(action: str, approval: Approval, caller: Person) -> pb.Approval:
    log.info(
        f"approval {action}",
        extra={"approval_id": approval.id, "by": caller.subject, "status": approval.status},
    )
    return approval_message(approval)


async def _abort(context: Context, method: str, exc: ExtprocError) -> None:
    log.info("approvals call refused", extra={"method": method, "error": str(exc.code)})
    await context.abort(
        grpc_status(exc.code), f"{exc.code}: {exc.reason}", ((ERROR_METADATA, str(exc.code)),)
    )
