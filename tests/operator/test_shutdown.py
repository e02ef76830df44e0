"""SIGTERM stops the real operator, whether or not the API server still answers.

Each test starts the operator against kmock with one PromDemo whose heal loop
(a kopf daemon) runs beside the resync timer, then sends SIGTERM:

- with the API server up;
- after the kmock server was stopped (connections refused);
- with the API server not answering (kmock's event loop held: connections are
  accepted, requests never answered — a hung or partitioned API server). Before
  the fix this one hung for minutes: kopf waits for a sync handler's thread, and
  the `kubernetes` client's call only returns after its timeouts and retries.

The operator must exit with status 0. Its own bound is
`promdemo_operator.runtime.startup.SHUTDOWN_GRACE_SECONDS`; the tests allow `EXIT_TIMEOUT`,
asserting that it exits, not how fast. Every process is stopped at teardown.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.operator import scenarios as sc
from tests.support.kmock_cluster import KmockCluster, OperatorProcess, operator_log_tail
from tests.support.processes import wait_until

pytestmark = pytest.mark.operator

EXIT_TIMEOUT = 30.0
NAME = "shop"


def start_with_heal_loop(cluster: KmockCluster) -> OperatorProcess:
    """The operator, one reconciled PromDemo with autoHeal on, its heal loop running."""
    op = cluster.start_operator()
    cluster.create(sc.promdemo(NAME, {"replicas": 1, "autoHeal": {"enabled": True}}))
    sc.wait_observed(cluster, NAME, op)
    sc.wait(
        lambda: f"{sc.NS}/{NAME}: heal loop started" in op.process.log(),
        "the heal loop to start",
        op,
    )
    return op


def sigterm_and_wait(op: OperatorProcess) -> int:
    """SIGTERM; the exit status (fails, with the log, if it does not exit in time)."""
    op.process.signal(signal.SIGTERM)
    try:
        return op.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the operator did not exit {EXIT_TIMEOUT:.0f}s after SIGTERM\n"
            f"--- operator log ---\n{operator_log_tail(op)}"
        )


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def stop_server(cluster: KmockCluster) -> None:
    """Stop kmock's server (as KmockCluster.close() does, without stopping the operators)."""
    assert cluster._loop is not None
    assert cluster._stop is not None
    cluster._loop.call_soon_threadsafe(cluster._stop.set)
    wait_until(lambda: refused(cluster.url), timeout=30, what="kmock to stop listening")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KmockCluster]:
    """A KmockCluster whose server a test may stop first (close() expects a running one)."""
    cluster = KmockCluster(tmp_path / "kmock").start()
    try:
        yield cluster
    finally:
        for op in list(cluster._operators):
            cluster.stop_operator(op)
        if refused(cluster.url) and cluster._thread is not None:
            # Stopped by the test: let it finish, and keep close() off its closed loop.
            cluster._thread.join(timeout=90)
            cluster._loop = None
        cluster.close()


@pytest.fixture
def held() -> Iterator[threading.Event]:
    """Set to release a kmock event loop held by `hold_server` (set at teardown at the latest)."""
    release = threading.Event()
    yield release
    release.set()


def hold_server(cluster: KmockCluster, release: threading.Event) -> None:
    """Block kmock's event loop until `release` is set: the API server stops answering."""
    assert cluster._loop is not None
    holding = threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(120)

    cluster._loop.call_soon_threadsafe(hold)
    assert holding.wait(30), "kmock's loop did not pick up the hold"


def test_sigterm_with_the_api_server_up(kmock_cluster: KmockCluster) -> None:
    op = start_with_heal_loop(kmock_cluster)
    assert sigterm_and_wait(op) == 0
    log = op.process.log()
    assert f"{sc.NS}/{NAME}: heal loop stopped" in log, operator_log_tail(op)
    assert "exiting anyway" not in log, operator_log_tail(op)


def test_sigterm_after_the_api_server_stopped(cluster: KmockCluster) -> None:
    op = start_with_heal_loop(cluster)
    stop_server(cluster)
    assert sigterm_and_wait(op) == 0


def test_sigterm_while_the_api_server_does_not_answer(
    kmock_cluster: KmockCluster, held: threading.Event
) -> None:
    op = start_with_heal_loop(kmock_cluster)
    # Let the resync timer and the heal loop send requests that will never be answered.
    hold_server(kmock_cluster, held)
    time.sleep(3)
    assert sigterm_and_wait(op) == 0
    log = op.process.log()
    assert f"{sc.NS}/{NAME}: heal loop stopped" in log, operator_log_tail(op)
    held.set()  # kmock answers again; the fixture's teardown can stop it
