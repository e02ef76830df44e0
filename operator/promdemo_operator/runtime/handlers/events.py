"""Posting the operator's Events on a PromDemo, rate-limited per object and reason.

kopf posts each `kopf.event` as a new Event object; a PromDemo that flaps would post
one per occurrence, without end. Every Event of the handlers goes through `post`,
which asks the operator's one `EventLimiter` (`core/event_limit.py`: a token bucket per
PromDemo and reason) first, and counts what it leaves out in
`promdemo_operator_events_suppressed_total`. An Event let through then takes a token
of the API client's limit (`--kube-api-qps`, `runtime/ratelimit.py`) like every other
write: when none is left it is handed to kopf when its token comes due
(`loop.call_later` keeps the context, where kopf's event queue lives), so the loop
never blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import kopf

from promdemo_operator.core.event_limit import EventLimiter, with_suppressed
from promdemo_operator.runtime.metrics import metrics
from promdemo_operator.runtime.ratelimit import TokenBucket

log = logging.getLogger("promdemo.events")


def post(
    limiter: EventLimiter,
    body: Any,
    *,
    type: str,
    reason: str,
    message: str,
    api_limiter: TokenBucket | None = None,
) -> bool:
    """Post one Event on `body` unless its object and reason are over the limit; posted?"""
    meta = body.get("metadata") or {}
    who = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
    admission = limiter.admit((who, reason))
    if not admission.post:
        metrics().events_suppressed.labels(type=type).inc()
        log.debug("%s Event %s on %s left out (rate limit)", type, reason, who)
        return False
    send = functools.partial(
        kopf.event,
        body,
        type=type,
        reason=reason,
        message=with_suppressed(message, admission.suppressed),
    )
    delay = api_limiter.reserve() if api_limiter is not None else 0.0
    if delay > 0:
        with contextlib.suppress(RuntimeError):  # no running loop: post now
            asyncio.get_running_loop().call_later(delay, send)
            return True
    send()
    return True
