"""The simulated work behind an order: a flaky downstream dependency, then processing.

Defaults, those of the Flask practice demo (docs/lessons.md): the dependency takes
uniform 0.05–1.5 s and fails 10% of the time; processing takes uniform 0.1–0.5 s.
With the simulation off there are no sleeps and no failures (benchmarks measure
the service, not `time.sleep`).
The random source and the sleep are injectable so tests decide the outcome.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from promdemo_app.settings import Settings


@dataclass(frozen=True)
class SimulationConfig:
    enabled: bool = True
    dependency_min_seconds: float = 0.05
    dependency_max_seconds: float = 1.5
    dependency_failure_rate: float = 0.1
    processing_min_seconds: float = 0.1
    processing_max_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulationConfig:
        return cls(
            enabled=settings.simulation,
            dependency_min_seconds=settings.dependency_min_seconds,
            dependency_max_seconds=settings.dependency_max_seconds,
            dependency_failure_rate=settings.dependency_failure_rate,
            processing_min_seconds=settings.processing_min_seconds,
            processing_max_seconds=settings.processing_max_seconds,
        )


class Simulation:
    """Sleeps and failures for one order; safe to share between threads."""

    def __init__(
        self,
        config: SimulationConfig,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        # random.Random's methods are safe to call from many threads (the GIL
        # makes each draw atomic); sharing one keeps a seeded test repeatable.
        self._rng = rng or random.Random()
        self._sleep = sleep

    def call_dependency(self) -> bool:
        """Call the downstream dependency; True when it answered, False when it failed."""
        c = self.config
        if not c.enabled:
            return True
        self._sleep(self._rng.uniform(c.dependency_min_seconds, c.dependency_max_seconds))
        return self._rng.random() >= c.dependency_failure_rate

    def process(self) -> None:
        """The order's own work after the dependency answered."""
        c = self.config
        if c.enabled:
            self._sleep(self._rng.uniform(c.processing_min_seconds, c.processing_max_seconds))
