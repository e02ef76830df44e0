"""Leader election with client-go's semantics, in plain Python (no Kubernetes client).

The same rules as client-go's `tools/leaderelection` (`tryAcquireOrRenew`):

- a candidate reads the Lease; none: it creates one naming itself;
- a Lease held by another is left alone until the candidate has seen the same
  record, unchanged, for the record's `leaseDurationSeconds` on its OWN clock
  (`observed_at`: never the holder's `renewTime`, so clocks need not agree);
- otherwise it writes itself in with an optimistic update (the resourceVersion it
  read): of two candidates only one update wins, the other gets a conflict;
- the holder renews every `retry_period`; when it has not renewed for
  `renew_deadline` it is no longer the leader and must stop acting at once. As
  `renew_deadline < lease_duration` and another candidate only takes over
  `lease_duration` after it SAW the last renewal, two leaders never act at once
  (while the clocks run at the same rate).

`LeaderElector.fresh()` is the question a leader asks before it acts: renewed
within the renew deadline on a monotonic clock. A process stopped (SIGSTOP) past
its deadline finds on waking that it is no longer fresh, before anything else.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

log = logging.getLogger("promdemo.leader")

#: client-go's defaults (controller-runtime's too).
DEFAULT_LEASE_DURATION = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
#: client-go's JitterFactor: the renew deadline must exceed retry_period * this.
JITTER_FACTOR = 1.2


@dataclass(frozen=True)
class ElectionConfig:
    """The election's durations, in seconds; checked as client-go's `NewLeaderElector` does."""

    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        for name in ("lease_duration", "renew_deadline", "retry_period"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"the lease duration ({self.lease_duration:g}s) must be longer than the renew "
                f"deadline ({self.renew_deadline:g}s)"
            )
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"the renew deadline ({self.renew_deadline:g}s) must be longer than "
                f"{JITTER_FACTOR:g} x the retry period ({self.retry_period:g}s)"
            )

    @property
    def lease_seconds(self) -> int:
        """`spec.leaseDurationSeconds` (whole seconds, at least 1, rounded up)."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease's spec: who holds it, for how long, since when (epoch seconds)."""

    holder: str
    lease_duration_seconds: int
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0


@dataclass(frozen=True)
class StoredLease:
    """A Lease as read: its record and the resourceVersion to update it against."""

    record: LeaseRecord
    version: str


class LeaseConflict(Exception):
    """The Lease changed since it was read (409), or exists already on create."""


class LeaseStoreError(Exception):
    """The Lease could not be read or written (the API did not answer, refused, ...)."""


class LeaseStore(Protocol):
    """Where the Lease lives (`lease.KubeLeaseStore`; a dict in the unit tests)."""

    def get(self) -> StoredLease | None:
        """The Lease, or None when there is none; `LeaseStoreError` otherwise."""
        ...

    def create(self, record: LeaseRecord) -> StoredLease:
        """Create the Lease; `LeaseConflict` when it exists."""
        ...

    def update(self, record: LeaseRecord, version: str) -> StoredLease:
        """Replace the Lease read at `version`; `LeaseConflict` when it changed since."""
        ...


class LeaderElector:
    """One candidate: `try_acquire_or_renew()` every retry period; `fresh()` before acting.

    `monotonic` measures durations (observed leases, the renew deadline); `wall` gives
    the times written into the Lease (for people and `promdemo doctor`).
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        config: ElectionConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not identity:
            raise ValueError("the candidate's identity must not be empty")
        self.store = store
        self.identity = identity
        self.config = config or ElectionConfig()
        self.monotonic = monotonic
        self.wall = wall
        self._lock = threading.Lock()
        self._observed: StoredLease | None = None
        self._observed_at = 0.0
        #: Monotonic time of the last successful acquire or renew (None: not leading).
        self._renewed_at: float | None = None

    # -- what the process asks ---------------------------------------------------------

    @property
    def observed_holder(self) -> str | None:
        """The holder in the last Lease read or written (None before the first read)."""
        observed = self._observed
        return observed.record.holder if observed is not None else None

    def fresh(self) -> bool:
        """True while this candidate leads: it renewed less than `renew_deadline` ago."""
        renewed = self._renewed_at
        return renewed is not None and self.monotonic() - renewed < self.config.renew_deadline

    def renewed_ago(self) -> float | None:
        """Seconds since the last acquire or renew (None when it never led)."""
        renewed = self._renewed_at
        return None if renewed is None else self.monotonic() - renewed

    # -- one round (client-go's tryAcquireOrRenew) ---------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when this candidate holds it now."""
        with self._lock:
            return self._try()

    def _try(self) -> bool:
        started = self.monotonic()
        now = self.wall()
        mine = LeaseRecord(
            holder=self.identity,
            lease_duration_seconds=self.config.lease_seconds,
            acquire_time=now,
            renew_time=now,
        )
        try:
            current = self.store.get()
        except LeaseStoreError as e:
            log.warning("cannot read the Lease: %s", e)
            return False
        if current is None:
            try:
                created = self.store.create(mine)
            except (LeaseConflict, LeaseStoreError) as e:
                log.info("could not create the Lease: %s", e)
                return False
            return self._won(created, started)

        if self._observed is None or self._observed.record != current.record:
            self._observed, self._observed_at = current, self.monotonic()
        else:
            self._observed = current  # same record: keep when it was first seen

        old = current.record
        if old.holder and old.holder != self.identity:
            if self._renewed_at is not None:
                # Another holds it although we thought we did: we lead no more, now.
                log.warning("the Lease is held by %s: no longer the leader", old.holder)
                self._renewed_at = None
            if self._observed_at + old.lease_duration_seconds > self.monotonic():
                return False  # held by another, and not expired on our clock
        if old.holder == self.identity:
            mine = replace(mine, acquire_time=old.acquire_time, transitions=old.transitions)
        else:
            mine = replace(mine, transitions=old.transitions + 1)
        try:
            updated = self.store.update(mine, current.version)
        except (LeaseConflict, LeaseStoreError) as e:
            log.info("could not update the Lease: %s", e)
            return False
        return self._won(updated, started)

    def _won(self, stored: StoredLease, started: float) -> bool:
        self._observed, self._observed_at = stored, self.monotonic()
        # Counted from before the read: a slow write must not stretch the deadline.
        self._renewed_at = started
        return True

    def release(self) -> bool:
        """Give the Lease up at a clean exit (client-go's ReleaseOnCancel): the standby
        takes over at its next retry instead of after the lease duration."""
        with self._lock:
            observed = self._observed
            if self._renewed_at is None or observed is None:
                return False
            if observed.record.holder != self.identity:
                return False
            self._renewed_at = None
            now = self.wall()
            empty = LeaseRecord(
                holder="",
                lease_duration_seconds=1,
                acquire_time=now,
                renew_time=now,
                transitions=observed.record.transitions,
            )
            try:
                self._observed = self.store.update(empty, observed.version)
            except (LeaseConflict, LeaseStoreError) as e:
                log.info("could not release the Lease: %s", e)
                return False
            self._observed_at = self.monotonic()
            return True
