"""The client-side limit on the operator's API requests: one token bucket.

client-go's rule (`flowcontrol.NewTokenBucketRateLimiter`): up to `burst` requests at
once, then `qps` per second on average. `--kube-api-qps` / `--kube-api-burst` set it,
with kube-controller-manager's defaults (20 and 30, the same flag names): a large
apply (1,000 PromDemos at once) is spread over time instead of sent as fast as the
threads can, and the API server's own fairness never has to push back on us.

`reserve()` takes a token and says how long its caller must wait before sending; the
bucket may go below zero, so waiting callers queue in the order they asked, as Go's
`rate.Limiter.Reserve` does. It is thread-safe (the API calls run in a thread pool)
and takes its clock as an argument (the tests drive it by hand).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

#: kube-controller-manager's `--kube-api-qps` and `--kube-api-burst` defaults.
DEFAULT_QPS = 20.0
DEFAULT_BURST = 30
#: Bounds of the flags: beyond them a limit means nothing on one API server.
MAX_QPS = 10_000.0
MAX_BURST = 100_000


class TokenBucket:
    """`burst` tokens, refilled at `qps` per second; one token per request."""

    def __init__(
        self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(qps) and 0 < qps <= MAX_QPS):
            raise ValueError(f"qps must be a number in (0, {MAX_QPS:g}], got {qps!r}")
        if not 1 <= burst <= MAX_BURST:
            raise ValueError(f"burst must be 1..{MAX_BURST}, got {burst!r}")
        self.qps = float(qps)
        self.burst = int(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()
        #: Requests that had to wait, and the seconds they waited in all (the log's figures).
        self.delayed = 0
        self.delayed_seconds = 0.0

    def reserve(self) -> float:
        """Take a token: 0.0 when the request may go now, else the seconds to wait first."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
            self._last = now
            self._tokens -= 1.0
            if self._tokens >= 0.0:
                return 0.0
            wait = -self._tokens / self.qps
            self.delayed += 1
            self.delayed_seconds += wait
            return wait

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block the calling thread until its request may go; the seconds it waited."""
        delay = self.reserve()
        if delay > 0:
            sleep(delay)
        return delay
