"""SIGTERM against the real server: not ready at once, every accepted request answered, exit 0."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

CONCURRENT = 300


class Refused(Exception):
    """The connection was refused: the server had stopped accepting."""


def request(base_url: str, method: str, path: str, timeout: float = 120.0) -> tuple[int, dict]:
    """One request on a fresh connection; Refused if it could not connect."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            raise Refused from None
        conn.request(method, path, headers={"Connection": "close"})
        response = conn.getresponse()
        # A truncated body fails here (IncompleteRead) or in json.loads.
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def in_progress(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "http_requests_in_progress" and s.labels["route"] == "/order":
                return s.value
    raise AssertionError("http_requests_in_progress{route='/order'} missing")


def start_orders(pool: ThreadPoolExecutor, base_url: str, n: int) -> list[Future]:
    """`n` orders released at the same moment; their futures."""
    barrier = threading.Barrier(n)

    def one() -> tuple[int, dict]:
        barrier.wait(timeout=120)
        return request(base_url, "POST", "/order")

    return [pool.submit(one) for _ in range(n)]


def test_sigterm_mid_burst_answers_every_accepted_request(start_app) -> None:
    # Orders that stay in flight for seconds, so the signal lands while all
    # 300 are inside the app.
    proc, url = start_app(
        env={
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "3",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "4",
            "PROMDEMO_SHUTDOWN_TIMEOUT": "60",
        }
    )
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        futures = start_orders(pool, url, CONCURRENT)
        wait_until(
            lambda: in_progress(url) == CONCURRENT,
            timeout=60,
            what="all 300 orders in flight",
        )
        proc.signal(signal.SIGTERM)

        # The probe port says "not ready" from the signal on, never "ready",
        # until the process is gone; the service port takes no new request
        # (gunicorn stops accepting: a new connection is refused or reset
        # unanswered, never answered half-way).
        # (The signal reaches gunicorn's parent process, which passes it on to
        # the worker within milliseconds: a probe in between may still be 200.)
        signalled = time.monotonic()
        probes: list[int | str] = []
        first_503 = None
        deadline = signalled + 30
        while time.monotonic() < deadline:
            try:
                status, _ = request(proc.probe_url, "GET", "/readyz", timeout=30)
            except (Refused, ConnectionError):
                probes.append("refused")
                break
            if status == 503 and first_503 is None:
                first_503 = time.monotonic() - signalled
            probes.append(status)
            time.sleep(0.05)
        assert probes[-1] == "refused", probes
        assert first_503 is not None, probes
        assert first_503 < 1.0, first_503
        after = probes[probes.index(503) :]
        assert set(after) <= {503, "refused"}, probes

        results = [f.result(timeout=120) for f in futures]

    assert all(status in {200, 409, 502} for status, _ in results), results
    assert all(body.get("order_id") for _, body in results)
    assert proc.wait(timeout=60) == 0
    log = proc.log()
    assert "draining" in log
    assert "Traceback" not in log


def test_an_idle_keep_alive_connection_does_not_hold_the_exit(start_app) -> None:
    proc, url = start_app(env={"PROMDEMO_SHUTDOWN_TIMEOUT": "120"})
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/inventory")
        assert conn.getresponse().read()
        # The connection stays open, idle between requests.
        proc.signal(signal.SIGTERM)
        # Closed by the server long before its 120 s shutdown timeout.
        assert proc.wait(timeout=60) == 0
    finally:
        conn.close()


def test_a_silent_connection_gets_a_grace_then_is_closed(start_app) -> None:
    proc, url = start_app(env={"PROMDEMO_SHUTDOWN_TIMEOUT": "120"})
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as silent:
        # Let the server accept it before the signal.
        wait_until(
            lambda: httpx.get(f"{url}/healthz", timeout=5).status_code == 200,
            timeout=30,
            what="server answering",
        )
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert silent.recv(1) == b""


def test_orders_still_running_at_the_shutdown_timeout_exit_1(start_app) -> None:
    proc, url = start_app(
        env={
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "30",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "30",
            "PROMDEMO_SHUTDOWN_TIMEOUT": "1",
        }
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(request, url, "POST", "/order", 60)
        wait_until(lambda: in_progress(url) == 1, timeout=30, what="the order in flight")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1
        with pytest.raises((OSError, http.client.HTTPException)):
            stuck.result(timeout=60)
    assert "shutdown timeout" in proc.log()


def test_a_half_sent_request_is_closed_while_an_order_in_flight_finishes(start_app) -> None:
    proc, url = start_app(
        env={
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "3",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "3",
            "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
            "PROMDEMO_SHUTDOWN_TIMEOUT": "120",
        }
    )
    parts = urlsplit(url)
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        socket.create_connection((parts.hostname, parts.port), timeout=60) as partial,
    ):
        order = pool.submit(request, url, "POST", "/order", 120)
        wait_until(lambda: in_progress(url) == 1, timeout=30, what="the order in flight")
        # Headers and 3 of the 100 body bytes announced, then nothing more.
        partial.sendall(b"POST /order HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\nabc")
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        # Closed by the server well before the 120 s shutdown timeout...
        assert partial.recv(1) == b""
        print(f"\nthe half-sent request was closed {time.monotonic() - started:.1f}s after SIGTERM")
        # ...while the order received before the signal is answered.
        status, body = order.result(timeout=120)
        assert status == 200
        assert body["status"] == "success"
    assert proc.wait(timeout=60) == 0


def test_a_client_that_never_reads_its_answers_does_not_hold_the_exit(start_app) -> None:
    # 300 pipelined scrapes, never read: the server's writes block once the
    # socket buffers are full. Before, this held the exit for the whole
    # shutdown timeout.
    proc, url = start_app(env={"PROMDEMO_SHUTDOWN_TIMEOUT": "60"})
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.sendall(b"GET /metrics HTTP/1.1\r\nHost: shop\r\n\r\n" * 300)
        time.sleep(2)  # the server answers until its writes block
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        took = time.monotonic() - started
    print(f"\nexited {took:.1f}s after SIGTERM, with a client not reading its answers")
    assert took < 10, took  # far inside the 60 s drain limit
    assert "did not read" in proc.log() or "stalled reading its answer" in proc.log()


def test_sighup_reloads_without_dropping_orders_in_flight(start_app) -> None:
    # SIGHUP is gunicorn's reload (docs/app.md): a new worker starts, the old
    # one answers what it holds, then exits.
    proc, url = start_app(
        env={
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "2",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "2",
            "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
            "PROMDEMO_INITIAL_INVENTORY": "1000",
            "PROMDEMO_SHUTDOWN_TIMEOUT": "30",
        }
    )
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = start_orders(pool, url, 20)
        wait_until(lambda: in_progress(url) == 20, timeout=30, what="20 orders in flight")
        proc.signal(signal.SIGHUP)
        results = [f.result(timeout=60) for f in futures]
    assert [status for status, _ in results] == [200] * 20
    # The new worker serves, the process lives on, and its probes answer.
    wait_until(
        lambda: httpx.post(f"{url}/order", timeout=30).status_code == 200,
        timeout=30,
        what="an order on the new worker",
    )
    # (The old worker shares the probe port while it drains, answering 503.)
    wait_until(
        lambda: httpx.get(f"{proc.probe_url}/readyz", timeout=10).status_code == 200,
        timeout=30,
        what="ready again",
    )
    assert proc.alive()
    assert "Traceback" not in proc.log()
