"""A per-object rate limit on Kubernetes Events, as client-go's EventCorrelator does.

Plain Python, no Kubernetes client: the adapter asks `EventLimiter.admit(key)` before
it posts an Event and posts only when told to. A PromDemo that flaps (a pod that goes
negative again and again with a short cooldown, a reconcile failing in a loop) would
otherwise post one Event per occurrence, without end.

Each key (the involved object and the Event's reason) has a token bucket, like
client-go's spam filter (`EventSourceObjectSpamFilter`): `burst` Events at once, then
one more each `refill_seconds`. An Event over the limit is not posted but counted;
the next Event the key may post says how many were left out since the last one, so
`kubectl describe` still tells a flood from a single occurrence. The number of keys
is bounded (`max_keys`, least recently used forgotten first), so the limiter's memory
does not grow with the number of PromDemos ever seen.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Events one object may post for one reason at once...
DEFAULT_BURST = 10
#: ...then one more each this many seconds (client-go: 25, then one per 5 minutes).
DEFAULT_REFILL_SECONDS = 30.0
#: Keys remembered at most (least recently used forgotten first).
DEFAULT_MAX_KEYS = 4096


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether to post now, and how many Events of the key were left out before it."""

    post: bool
    suppressed: int = 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


class EventLimiter:
    """Token buckets per key; `admit(key)` before each Event."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        refill_seconds: float = DEFAULT_REFILL_SECONDS,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or refill_seconds <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be >= 1 and refill_seconds > 0")
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def admit(self, key: Hashable) -> Admission:
        """Take a token for `key`: post (with the count left out before), or leave out."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill_seconds)
            bucket.updated = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return Admission(post=False)
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return Admission(post=True, suppressed=suppressed)

    def __len__(self) -> int:
        return len(self._buckets)


def with_suppressed(message: str, suppressed: int) -> str:
    """The Event's message, saying how many like it were left out before it."""
    if suppressed <= 0:
        return message
    noun = "Event" if suppressed == 1 else "Events"
    return f"{message} ({suppressed} similar {noun} not posted before this one: rate limit)"
