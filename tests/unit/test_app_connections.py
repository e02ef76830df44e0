"""Connection limits and timeouts: the real server in this process, with small limits.

The event loop runs on a thread (`Server.step()`); clients are raw sockets on
127.0.0.1, so every test sees what a client on the network would see.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from promdemo_app.connections import Limits
from promdemo_app.lifecycle import Lifecycle
from promdemo_app.server import Server
from promdemo_app.settings import Settings
from promdemo_app.simulation import Simulation, SimulationConfig
from promdemo_app.web import create_app
from tests.support.processes import wait_until

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


class Blocking(Simulation):
    """A dependency call that waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__(SimulationConfig(enabled=False))
        self.release = threading.Event()
        self.entered = threading.Event()

    def call_dependency(self) -> bool:
        self.entered.set()
        self.release.wait(timeout=60)
        return True


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """`serve(limits, simulation=None)`: a Server on 127.0.0.1, its loop on a thread."""
    stops: list[tuple[threading.Event, threading.Thread, Server]] = []

    def start(limits: Limits, simulation: Simulation | None = None) -> Server:
        settings = Settings(host="127.0.0.1", port=0, simulation=False, threads=8)
        lifecycle = Lifecycle()
        app = create_app(settings, CollectorRegistry(), lifecycle=lifecycle, simulation=simulation)
        server = Server(app, settings, lifecycle, limits=limits)
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                server.step(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        stops.append((stop, thread, server))
        return server

    yield start
    for stop, thread, server in stops:
        stop.set()
        thread.join(timeout=10)
        server.close()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(server.addresses[0], timeout=10)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or a full answer has arrived."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


def accepted(server: Server, n: int) -> None:
    wait_until(
        lambda: len(server.listeners[0].active_channels) >= n,
        timeout=10,
        what=f"{n} connections accepted",
    )


def test_at_the_limit_the_connection_idle_longest_makes_room(serve) -> None:
    server = serve(Limits(connections=10))
    idle = []
    for _ in range(10):
        idle.append(connect(server))
        # Distinct idle times, so "longest" is well defined.
        time.sleep(0.01)
    accepted(server, 10)

    with connect(server) as probe:
        probe.sendall(HEALTHZ)
        assert answer(probe).startswith(b"HTTP/1.1 200")
    assert closed_by_server(idle[0])
    assert all(still_open(s) for s in idle[1:])
    for s in idle:
        s.close()


def test_a_connection_waiting_for_its_answer_is_never_closed_for_room(serve) -> None:
    simulation = Blocking()
    server = serve(Limits(connections=3), simulation)
    with connect(server) as ordering:
        ordering.sendall(b"POST /order HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        assert simulation.entered.wait(timeout=10)
        idle = [connect(server), connect(server)]
        accepted(server, 3)
        # Full: idle connections make room for the probes (kept open, so each
        # new one needs room), the order keeps its place.
        probes = []
        for _ in range(4):
            probe = connect(server)
            probes.append(probe)
            probe.sendall(HEALTHZ)
            assert answer(probe).startswith(b"HTTP/1.1 200")
        assert all(closed_by_server(s) for s in idle)
        simulation.release.set()
        assert answer(ordering).startswith(b"HTTP/1.1 200")
    for s in idle + probes:
        s.close()


def test_a_request_sent_too_slowly_is_closed(serve) -> None:
    server = serve(Limits(request_timeout=0.5))
    with connect(server) as slow:
        slow.sendall(b"GET /inventory HTTP/1.1\r\nHost: test\r\n")
        # One more header byte now and then keeps it "active", not complete.
        for _ in range(3):
            time.sleep(0.2)
            slow.sendall(b"X")
        assert closed_by_server(slow)


def test_a_connection_that_sends_nothing_is_closed(serve) -> None:
    server = serve(Limits(request_timeout=0.5))
    with connect(server) as silent:
        assert closed_by_server(silent)


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(serve) -> None:
    server = serve(Limits(idle_timeout=0.5, request_timeout=30))
    with connect(server) as conn:
        conn.sendall(b"GET /inventory HTTP/1.1\r\nHost: test\r\n\r\n")
        assert answer(conn).startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET /inventory HTTP/1.1\r\nHost: test\r\n\r\n")
        assert answer(conn).startswith(b"HTTP/1.1 200")
        assert closed_by_server(conn)


def test_an_answer_in_progress_is_not_cut_by_the_timeouts(serve) -> None:
    simulation = Blocking()
    server = serve(Limits(request_timeout=0.3, idle_timeout=0.3), simulation)
    with connect(server) as conn:
        conn.sendall(b"POST /order HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        assert simulation.entered.wait(timeout=10)
        time.sleep(1.5)  # well past both timeouts and a maintenance pass
        simulation.release.set()
        assert answer(conn).startswith(b"HTTP/1.1 200")
