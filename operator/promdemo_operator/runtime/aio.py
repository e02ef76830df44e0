"""The waits every daemon of the operator shares: one future per daemon that is done when
kopf asks it to stop, and the sleeps and waits that end early on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import kopf

T = TypeVar("T")


async def _stop_requested(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


def stop_requested(stopped: kopf.DaemonStopped) -> asyncio.Future[None]:
    """A future done once kopf asks the daemon to stop: made once per daemon (cancel it
    when the daemon returns), and raced by every wait of the daemon.

    One per daemon rather than one per wait: kopf's `await stopped.wait(t)` makes two
    tasks, a timer and a TimeoutError each time, and every PromDemo's loops wait all the
    time (at rest they are most of the operator's memory per PromDemo that is not the
    objects themselves).
    """
    return asyncio.ensure_future(_stop_requested(stopped))


async def pause(halt: asyncio.Future[None], seconds: float) -> None:
    """Sleep `seconds`, less when the daemon is asked to stop (`halt`, see `stop_requested`)."""
    if not halt.done():
        await asyncio.wait({halt}, timeout=max(0.0, seconds))


async def unless_stopped(halt: asyncio.Future[None], work: Coroutine[Any, Any, T]) -> T | None:
    """`work`'s result, or None when the daemon was asked to stop first (`work` cancelled).

    kopf sets the daemon's `stopped` flag (`halt`, see `stop_requested`) and waits
    `cancellation_timeout` before it cancels the daemon; work blocked on an unanswered
    API call would use all of it. Cancelling here abandons the call's thread at once
    (a thread cannot be interrupted).
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None
    return task.result()


async def wait_woken(halt: asyncio.Future[None], wake: asyncio.Event, timeout: float) -> bool:
    """True when `wake` was set within `timeout` seconds (False on timeout or stop)."""
    if wake.is_set():
        return True
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({woken, halt}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
    return wake.is_set() and not halt.done()
