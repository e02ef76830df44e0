"""Timestamps as the Kubernetes API writes them: RFC 3339 in UTC, `Z` suffix.

One helper for every time the operator writes into a status or an event:
condition `lastTransitionTime`s to the second (as `metav1.Time` serializes),
heal times to the millisecond (a heal's latency is measured from them).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["parse_rfc3339", "rfc3339"]


def rfc3339(epoch: float | None = None, *, milliseconds: bool = False) -> str:
    """`epoch` (default: now) as `2026-12-01T23:24:44Z`, or `…:44.123Z` with milliseconds."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    text = moment.isoformat(timespec="milliseconds" if milliseconds else "seconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: object) -> float | None:
    """The epoch seconds of an RFC 3339 timestamp, or None when `text` is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()
