"""Running the election beside the operator: acquire first, then renew, and stop on loss.

controller-runtime's way, kept simple: the process takes the Lease BEFORE it starts
any handler or watch (a standby watches nothing and only answers its health and
metrics ports); once it leads, one thread renews every retry period and a watchdog
checks every `WATCHDOG_SECONDS` that the last renewal is younger than the renew
deadline. When it is not, `on_lost` runs at once (the operator exits non-zero and
the Deployment starts it again, as a standby): what it was doing stops with the
process, before the Lease can expire on another candidate's clock.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from promdemo_operator.runtime.leader.election import LeaderElector

log = logging.getLogger("promdemo.leader")

#: How often the watchdog looks at the last renewal (a small part of any renew deadline).
WATCHDOG_SECONDS = 0.1
#: Each acquire attempt waits retry_period x (1 + up to this): candidates do not stay in step.
ACQUIRE_JITTER = 0.2


class ElectionRunner:
    """Acquire (blocking, stoppable), then renew and watch in two daemon threads."""

    def __init__(
        self,
        elector: LeaderElector,
        *,
        on_lost: Callable[[str], None],
        on_change: Callable[[bool], None] = lambda leading: None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.elector = elector
        self.on_lost = on_lost
        self.on_change = on_change
        self.jitter = jitter
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._threads: list[threading.Thread] = []

    def acquire(self, stop: threading.Event) -> bool:
        """Try every retry period until this candidate leads (True) or `stop` is set (False)."""
        config = self.elector.config
        holder = None
        while not stop.is_set():
            if self.elector.try_acquire_or_renew():
                log.info("acquired the Lease as %s: leading", self.elector.identity)
                self.on_change(True)
                return True
            if self.elector.observed_holder != holder:
                holder = self.elector.observed_holder
                log.info("standby: the Lease is held by %s", holder or "nobody")
            stop.wait(config.retry_period * (1 + ACQUIRE_JITTER * self.jitter()))
        return False

    def start(self) -> None:
        """Renew and watch in the background (after `acquire` returned True)."""
        for name, target in (("leader-renew", self._renew), ("leader-watchdog", self._watch)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _renew(self) -> None:
        period = self.elector.config.retry_period
        while not self._stop.wait(period):
            if not self.elector.try_acquire_or_renew():
                ago = self.elector.renewed_ago()
                log.warning(
                    "could not renew the Lease (last renewed %s ago)",
                    "never" if ago is None else f"{ago:.1f}s",
                )

    def _watch(self) -> None:
        while not self._stop.wait(WATCHDOG_SECONDS):
            if not self.elector.fresh():
                self.lose()
                return

    def lose(self) -> None:
        """The leadership is gone: say so once and call `on_lost`."""
        if self._lost.is_set() or self._stop.is_set():
            return
        self._lost.set()
        ago = self.elector.renewed_ago()
        reason = (
            f"the Lease was not renewed within the renew deadline "
            f"({self.elector.config.renew_deadline:g}s)"
            if ago is not None
            else f"the Lease is held by {self.elector.observed_holder or 'another candidate'}"
        )
        log.error("leader election lost: %s", reason)
        self.on_change(False)
        self.on_lost(reason)

    def stop(self, *, release: bool = True) -> None:
        """A clean exit: stop renewing and, while still leading, give the Lease up."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        leading = not self._lost.is_set() and self.elector.fresh()
        if release and leading and self.elector.release():
            log.info("released the Lease")
        self.on_change(False)
