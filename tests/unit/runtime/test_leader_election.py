"""Leader election (promdemo_operator/runtime/leader): client-go's rules on a fake Lease store.

The candidates share one fake monotonic clock (durations) but write wall times of
their own (clocks that disagree by hours must not matter: a standby times the
Lease on its own clock, from when it SAW the record change).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from promdemo_operator.heal.pod_client import PodReadError
from promdemo_operator.runtime.handlers.pod_clients import NOT_LEADER, FencedPodHttp
from promdemo_operator.runtime.leader.election import (
    ElectionConfig,
    LeaderElector,
    LeaseConflict,
    LeaseRecord,
    LeaseStoreError,
    StoredLease,
)
from promdemo_operator.runtime.leader.lease import lease_object, micro_time, record_of
from promdemo_operator.runtime.leader.runner import ElectionRunner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeStore:
    """One Lease with a resourceVersion; `down` makes every call fail like an unreachable API."""

    lease: StoredLease | None = None
    versions: int = 0
    down: bool = False
    writes: list[LeaseRecord] = field(default_factory=list)

    def _check(self) -> None:
        if self.down:
            raise LeaseStoreError("connection refused")

    def get(self) -> StoredLease | None:
        self._check()
        return self.lease

    def _store(self, record: LeaseRecord) -> StoredLease:
        self.versions += 1
        self.lease = StoredLease(record, str(self.versions))
        self.writes.append(record)
        return self.lease

    def create(self, record: LeaseRecord) -> StoredLease:
        self._check()
        if self.lease is not None:
            raise LeaseConflict("already exists")
        return self._store(record)

    def update(self, record: LeaseRecord, version: str) -> StoredLease:
        self._check()
        if self.lease is None or self.lease.version != version:
            raise LeaseConflict("the object has been modified")
        return self._store(record)


class PerCandidateStore:
    """The shared store seen by one candidate, which may be cut off from it alone."""

    def __init__(self, shared: FakeStore) -> None:
        self.shared = shared
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise LeaseStoreError("connection refused")

    def get(self) -> StoredLease | None:
        self._check()
        return self.shared.get()

    def create(self, record: LeaseRecord) -> StoredLease:
        self._check()
        return self.shared.create(record)

    def update(self, record: LeaseRecord, version: str) -> StoredLease:
        self._check()
        return self.shared.update(record, version)


def candidates(
    store: FakeStore, clock: Clock, config: ElectionConfig | None = None
) -> tuple[LeaderElector, LeaderElector]:
    # Wall clocks 3 h apart: the election must not depend on them.
    a = LeaderElector(store, "a", config, monotonic=clock, wall=lambda: clock() + 1.7e9)
    b = LeaderElector(store, "b", config, monotonic=clock, wall=lambda: clock() + 1.7e9 - 10800)
    return a, b


def test_the_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    store, clock = FakeStore(), Clock()
    a, b = candidates(store, clock)
    assert a.try_acquire_or_renew()
    assert a.fresh()
    assert store.lease is not None
    assert store.lease.record.holder == "a"
    assert store.lease.record.lease_duration_seconds == 15
    assert not b.try_acquire_or_renew()
    assert not b.fresh()
    assert b.observed_holder == "a"


def test_a_renewing_leader_keeps_the_lease_and_its_acquire_time() -> None:
    store, clock = FakeStore(), Clock()
    a, b = candidates(store, clock)
    assert a.try_acquire_or_renew()
    acquired = store.lease.record.acquire_time
    for _ in range(60):  # two minutes of renewals every 2 s, the standby trying as often
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    record = store.lease.record
    assert record.holder == "a"
    assert record.acquire_time == acquired
    assert record.renew_time == pytest.approx(clock() + 1.7e9)
    assert record.transitions == 0


def test_the_standby_takes_over_a_lease_duration_after_it_saw_the_last_renewal() -> None:
    store, clock = FakeStore(), Clock()
    a, b = candidates(store, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees a's record now (t=0)
    clock.advance(1)
    assert a.try_acquire_or_renew()  # a renews at t=1, then dies
    clock.advance(1)
    assert not b.try_acquire_or_renew()  # b sees the renewal at t=2
    # From t=2 on b's own clock: 15 s. Before that, the Lease is a's.
    clock.advance(14.9)
    assert not b.try_acquire_or_renew()
    clock.advance(0.2)
    assert b.try_acquire_or_renew()
    assert b.fresh()
    assert store.lease.record.holder == "b"
    assert store.lease.record.transitions == 1
    # a, back from the dead, finds the Lease taken and does not lead.
    assert not a.try_acquire_or_renew()
    assert not a.fresh()


def test_a_leader_that_cannot_renew_stops_being_fresh_at_the_renew_deadline() -> None:
    store, clock = FakeStore(), Clock()
    a, _ = candidates(store, clock)
    assert a.try_acquire_or_renew()
    store.down = True
    for _ in range(4):
        clock.advance(2)
        assert not a.try_acquire_or_renew()
        assert a.fresh()  # 8 s: still within the 10 s deadline
    clock.advance(1.9)
    assert a.fresh()
    clock.advance(0.2)
    assert not a.fresh()


def test_a_stopped_leader_is_not_fresh_when_it_wakes() -> None:
    # SIGSTOP for longer than the lease: the first thing it can ask says "not leader".
    store, clock = FakeStore(), Clock()
    a, b = candidates(store, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.advance(16)
    assert b.try_acquire_or_renew()  # the standby took over meanwhile
    assert not a.fresh()
    assert not a.try_acquire_or_renew()


def test_of_two_standbys_racing_for_an_expired_lease_one_wins() -> None:
    store, clock = FakeStore(), Clock()
    old = LeaderElector(store, "old", monotonic=clock)
    assert old.try_acquire_or_renew()
    a, b = candidates(store, clock)
    assert not a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.advance(16)
    # Both read the same expired record; the second update carries a stale version.
    seen = store.get()
    a_store_update = store.update
    order: list[str] = []

    def racing_update(record: LeaseRecord, version: str) -> StoredLease:
        order.append(record.holder)
        if record.holder == "a":
            # b writes first, between a's read and a's update.
            store.update = a_store_update  # type: ignore[method-assign]
            assert b.try_acquire_or_renew()
        return a_store_update(record, version)

    store.update = racing_update  # type: ignore[method-assign]
    assert not a.try_acquire_or_renew()
    assert seen is not None
    assert store.lease.record.holder == "b"
    assert b.fresh()
    assert not a.fresh()


def test_a_released_lease_is_taken_at_the_next_try() -> None:
    store, clock = FakeStore(), Clock()
    a, b = candidates(store, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.advance(1)
    assert a.release()
    assert not a.fresh()
    assert store.lease.record.holder == ""
    clock.advance(2)
    assert b.try_acquire_or_renew()
    assert store.lease.record.holder == "b"


def test_two_candidates_are_never_fresh_at_once_whatever_fails() -> None:
    """A random walk: each candidate loses the API now and then (a partition of one)."""
    rng = random.Random(20)
    shared, clock = FakeStore(), Clock()
    stores = {"a": PerCandidateStore(shared), "b": PerCandidateStore(shared)}
    electors = {n: LeaderElector(s, n, monotonic=clock) for n, s in stores.items()}
    next_try = {"a": 0.0, "b": 0.7}
    changes = 0
    holder = None
    for _ in range(20_000):  # ~2.8 h of 0.5 s steps
        clock.advance(0.5)
        for store in stores.values():
            if rng.random() < 0.01:
                store.down = not store.down
        for name, elector in electors.items():
            if clock() >= next_try[name]:
                elector.try_acquire_or_renew()
                next_try[name] = clock() + 2.0
        fresh = [n for n, e in electors.items() if e.fresh()]
        assert len(fresh) <= 1, f"two leaders at t={clock()}: {fresh}"
        if fresh and fresh[0] != holder:
            holder, changes = fresh[0], changes + 1
    assert changes >= 5, "the walk never moved the Lease: it tested nothing"


def test_config_is_checked_as_client_go_does() -> None:
    with pytest.raises(ValueError, match="longer than the renew deadline"):
        ElectionConfig(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry period"):
        ElectionConfig(lease_duration=15, renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError, match="positive"):
        ElectionConfig(retry_period=0)
    assert ElectionConfig(lease_duration=2.5, renew_deadline=2, retry_period=0.5).lease_seconds == 3


def test_the_lease_object_round_trips_with_microsecond_times() -> None:
    record = LeaseRecord("pod-1", 15, 1_765_000_000.123456, 1_765_000_012.5, 3)
    obj = lease_object("promdemo-system", "promdemo-operator", record, "42")
    assert obj["apiVersion"] == "coordination.k8s.io/v1"
    assert obj["metadata"]["resourceVersion"] == "42"
    assert obj["spec"]["renewTime"] == micro_time(1_765_000_012.5)
    assert obj["spec"]["renewTime"].endswith(".500000Z")
    back = record_of(obj)
    assert back.holder == "pod-1"
    assert back.transitions == 3
    assert back.acquire_time == pytest.approx(record.acquire_time, abs=1e-6)
    assert record_of({"spec": {}}) == LeaseRecord("", 0)


def test_the_runner_ends_leadership_at_once_when_the_lease_goes_stale() -> None:
    store, clock = FakeStore(), Clock()
    config = ElectionConfig(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
    elector = LeaderElector(store, "a", config, monotonic=clock)
    lost: list[str] = []
    changes: list[bool] = []
    done = threading.Event()

    def on_lost(reason: str) -> None:
        lost.append(reason)
        done.set()

    runner = ElectionRunner(elector, on_lost=on_lost, on_change=changes.append)
    assert runner.acquire(threading.Event())
    runner.start()
    try:
        store.down = True
        clock.advance(1.1)  # past the renew deadline without a renewal
        assert done.wait(5), "the watchdog did not notice"
    finally:
        runner.stop(release=False)
    assert "renew deadline" in lost[0]
    assert changes[0] is True
    assert False in changes


def test_a_standby_stops_waiting_when_asked() -> None:
    store, clock = FakeStore(), Clock()
    holder = LeaderElector(store, "a", monotonic=clock)
    assert holder.try_acquire_or_renew()
    config = ElectionConfig(lease_duration=1.5, renew_deadline=1.0, retry_period=0.05)
    standby = ElectionRunner(
        LeaderElector(store, "b", config, monotonic=clock), on_lost=lambda reason: None
    )
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert not standby.acquire(stop)
    assert time.monotonic() - started < 3


async def _reset_server(counter: list[str]) -> tuple[web.AppRunner, str]:
    async def reset(request: web.Request) -> web.Response:
        counter.append(request.method)
        return web.json_response({"inventory": 100})

    app = web.Application()
    app.router.add_route("*", "/inventory/reset", reset)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the bound address, through the public API
    return runner, f"http://127.0.0.1:{port}/inventory/reset"


def test_the_fenced_pod_client_sends_no_reset_once_the_lease_is_stale() -> None:
    seen: list[str] = []
    fenced: list[int] = []
    fresh = [True]

    async def main() -> tuple[int, PodReadError]:
        runner, url = await _reset_server(seen)
        client = FencedPodHttp(allowed=lambda: fresh[0], on_fenced=lambda: fenced.append(1))
        try:
            answer = await client.request("POST", url, timeout=2, max_bytes=1000)
            fresh[0] = False
            try:
                await client.request("POST", url, timeout=2, max_bytes=1000)
            except PodReadError as e:
                error = e
            else:
                raise AssertionError("a stale leader's reset was sent")
            # Reading is not acting: a GET still goes out.
            await client.request("GET", url, timeout=2, max_bytes=1000)
            return answer.status, error
        finally:
            await client.aclose()
            await runner.cleanup()

    status, error = asyncio.run(main())
    assert status == 200
    assert seen == ["POST", "GET"]
    assert fenced == [1]
    assert error.sent is False
    assert NOT_LEADER in str(error)


def test_the_election_core_imports_neither_kopf_nor_the_kubernetes_client() -> None:
    import ast

    import promdemo_operator.runtime.leader.election as election

    tree = ast.parse(Path(election.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m.split(".")[0] in ("kopf", "kubernetes")}, imported
