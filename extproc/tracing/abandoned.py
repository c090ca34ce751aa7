"""Close a traced streaming handler's answers as soon as its call is done.

When a call ends while grpc is still sending an answer (Envoy resets an ext_proc stream once it
has what it needs, a client goes away mid-stream), grpc stops iterating the handler's async
generator and leaves it suspended at its ``yield``. Untraced, grpc held the last reference and
the generator is closed as grpc lets go of it. Behind the tracing wrapper it sits in a reference
cycle: the processor's closing audit record and the span waited for a garbage collection, which
may come late or, at exit, never, and the span ended as an error (the collector's GeneratorExit).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncGenerator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class CallContext(Protocol):
    """What this needs of a ``grpc.aio.ServicerContext``."""

    def add_done_callback(self, callback: Any) -> None: ...


_closing: set[asyncio.Task[None]] = set()  # tasks are only weakly held by the loop


def closed_when_done(
    context: CallContext,
    answers: AsyncGenerator[T, None],
    home: list[contextvars.Context] | None = None,
) -> AsyncGenerator[T, None]:
    """``answers``, closed (its ``finally`` run) once the call is done, however it ended.
    ``home``: where the answers put the context they run in once they start; the closing runs
    there, so what their cleanup writes to context variables (a span's notes) is not lost."""
    context.add_done_callback(lambda _call: _close_soon(answers, home))
    return answers


def _close_soon(answers: AsyncGenerator[Any, None], home: list[contextvars.Context] | None) -> None:
    if getattr(answers, "ag_frame", None) is None:  # it ended: the common case costs no task
        return
    where = home[-1] if home else None
    task = asyncio.get_running_loop().create_task(_close(answers), context=where)
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close(answers: AsyncGenerator[Any, None]) -> None:
    # RuntimeError: it is still running, awaiting inside, where the call's cancellation reaches it.
    with contextlib.suppress(RuntimeError):
        await answers.aclose()
