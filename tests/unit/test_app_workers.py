"""The worker pool: threads on demand, the most recently idle first, one queue report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from promdemo_app.workers import Dispatcher, WorkerPool
from tests.support.processes import wait_until


class Job:
    """A task that records its thread and, if told to, waits for `release`."""

    def __init__(self, hold: bool = False) -> None:
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.started = threading.Event()
        self.done = threading.Event()
        self.cancelled = False
        self.thread = ""

    def service(self) -> None:
        self.thread = threading.current_thread().name
        self.started.set()
        self.release.wait(timeout=30)
        self.done.set()

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def pools() -> Iterator[list[WorkerPool]]:
    made: list[WorkerPool] = []
    yield made
    for pool in made:
        pool.shutdown(timeout=5)


def make(pools: list[WorkerPool], size: int, idle_seconds: float = 30.0) -> WorkerPool:
    pool = WorkerPool("test", size, idle_seconds=idle_seconds)
    pools.append(pool)
    return pool


def test_threads_start_when_needed_up_to_the_size_then_requests_queue(pools) -> None:
    pool = make(pools, 3)
    assert pool.threads == 0
    jobs = [Job(hold=True) for _ in range(5)]
    for job in jobs:
        pool.add_task(job)
    for job in jobs[:3]:
        assert job.started.wait(timeout=10)
    assert pool.threads == 3
    assert pool.queued == 2
    for job in jobs:
        job.release.set()
    for job in jobs:
        assert job.done.wait(timeout=10)
    assert pool.threads == 3


def test_the_thread_idle_the_shortest_time_takes_the_next_request(pools) -> None:
    pool = make(pools, 3)
    first = [Job(hold=True) for _ in range(3)]
    for job in first:
        pool.add_task(job)
    for job in first:
        assert job.started.wait(timeout=10)
    # They go idle in this order; the last one is the most recently idle.
    for n, job in enumerate(first, 1):
        job.release.set()
        assert job.done.wait(timeout=10)
        wait_until(lambda n=n: pool.idle == n, timeout=10, what=f"{n} idle threads")
    nxt = Job()
    pool.add_task(nxt)
    assert nxt.done.wait(timeout=10)
    assert nxt.thread == first[-1].thread


def test_a_thread_idle_for_idle_seconds_exits(pools) -> None:
    pool = make(pools, 4, idle_seconds=0.2)
    jobs = [Job() for _ in range(4)]
    for job in jobs:
        pool.add_task(job)
    wait_until(lambda: pool.threads == 0, timeout=10, what="idle threads to exit")
    # And new work starts a thread again.
    again = Job()
    pool.add_task(again)
    assert again.done.wait(timeout=10)


def test_waiting_requests_are_reported_once(pools, caplog: pytest.LogCaptureFixture) -> None:
    pool = make(pools, 1)
    jobs = [Job(hold=True) for _ in range(5)]
    for job in jobs:
        pool.add_task(job)
    for job in jobs:
        job.release.set()
    for job in jobs:
        assert job.done.wait(timeout=10)
    with caplog.at_level(logging.WARNING, logger="promdemo_app.workers"):
        pool.report()
        pool.report()
    assert len(caplog.records) == 1
    assert "4 request(s) waited for one of the 1 test threads" in caplog.records[0].getMessage()


def test_shutdown_cancels_what_is_still_queued(pools) -> None:
    pool = make(pools, 1)
    running, queued = Job(hold=True), Job()
    pool.add_task(running)
    pool.add_task(queued)
    assert running.started.wait(timeout=10)
    running.release.set()
    pool.shutdown(cancel_pending=True, timeout=5)
    assert queued.cancelled or queued.done.is_set()
    late = Job()
    pool.add_task(late)
    assert late.cancelled


class Request:
    def __init__(self, path: str, error: object = None) -> None:
        self.path = path
        self.error = error


class Channel(Job):
    def __init__(self, request: Request) -> None:
        super().__init__()
        self.requests = [request]


def test_probes_have_threads_of_their_own_and_rejected_requests_go_with_orders() -> None:
    dispatcher = Dispatcher(threads=2, probe_threads=1)
    try:
        probe = Channel(Request("/healthz"))
        order = Channel(Request("/order"))
        # Waitress sets no path on a request it could not parse.
        rejected = Channel(Request("", error="bad request"))
        del rejected.requests[0].path
        for channel in (probe, order, rejected):
            dispatcher.add_task(channel)
            assert channel.done.wait(timeout=10)
        assert probe.thread.startswith("probe-")
        assert order.thread.startswith("worker-")
        assert rejected.thread.startswith("worker-")
    finally:
        dispatcher.shutdown(timeout=5)
