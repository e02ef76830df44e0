"""One snapshot of a Prometheus per interval, shared by every caller.

`SnapshotCache` hands out one `parse.Snapshot` per interval to all callers
(concurrent callers share one fetch): the cost of watching N PromDemos is 3
requests per Prometheus per interval, not 3N.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import PromDemoHealth, Snapshot

__all__ = ["SnapshotCache"]


class SnapshotCache:
    """One `Snapshot` per `interval` seconds for every caller (concurrent callers share a fetch).

    Keep `interval` at least the rule groups' evaluation interval
    (`RulesStatus.evaluation_interval`): the recorded numbers change no faster.
    """

    def __init__(
        self,
        api: PrometheusAPI,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.api = api
        self.interval = interval
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._taken: float = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> Snapshot | None:
        if self._snapshot is not None and self._clock() - self._taken < self.interval:
            return self._snapshot
        return None

    def due_in(self) -> float:
        """Seconds until the snapshot held is stale (0 when it is, or when there is none)."""
        if self._snapshot is None:
            return 0.0
        return max(0.0, self._taken + self.interval - self._clock())

    async def get(self) -> Snapshot:
        snapshot = self._fresh()
        if snapshot is not None:
            return snapshot
        async with self._lock:
            snapshot = self._fresh()  # another caller fetched it while this one waited
            if snapshot is None:
                snapshot = await self.api.snapshot()
                self._snapshot, self._taken = snapshot, self._clock()
            return snapshot

    async def for_promdemo(self, namespace: str | None, name: str) -> PromDemoHealth:
        return (await self.get()).for_promdemo(namespace, name)
