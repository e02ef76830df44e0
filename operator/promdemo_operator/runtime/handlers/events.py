"""Posting the operator's Events on a PromDemo, rate-limited per object and reason.

kopf posts each `kopf.event` as a new Event object; a PromDemo that flaps would post
one per occurrence, without end. Every Event of the handlers goes through `post`,
which asks the operator's one `EventLimiter` (`core/event_limit.py`: a token bucket per
PromDemo and reason) first, and counts what it leaves out in
`promdemo_operator_events_suppressed_total`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from promdemo_operator.core.event_limit import EventLimiter, with_suppressed
from promdemo_operator.runtime.metrics import metrics

log = logging.getLogger("promdemo.events")


def post(limiter: EventLimiter, body: Any, *, type: str, reason: str, message: str) -> bool:
    """Post one Event on `body` unless its object and reason are over the limit; posted?"""
    meta = body.get("metadata") or {}
    who = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
    admission = limiter.admit((who, reason))
    if not admission.post:
        metrics().events_suppressed.labels(type=type).inc()
        log.debug("%s Event %s on %s left out (rate limit)", type, reason, who)
        return False
    kopf.event(
        body, type=type, reason=reason, message=with_suppressed(message, admission.suppressed)
    )
    return True
