"""Connection floods against the real server: probes and scrapes are still answered.

2,100 connections is above the server's connection limit (2,000): before the
limit made room, waitress stopped accepting there and kubelet's `/healthz`
waited in the accept queue until the pod was restarted.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

FLOOD = 2100


@pytest.fixture
def fd_room() -> None:
    """Room in this process for the flood's sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = FLOOD + 512
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the open-files limit ({hard}) is below the {needed} the flood needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def flood(base_url: str, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """`FLOOD` connections, each sending `first_bytes` (nothing: idle); all closed after."""
    url = urlsplit(base_url)
    socks: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            sock = socket.create_connection((url.hostname, url.port), timeout=30)
            if first_bytes:
                sock.sendall(first_bytes)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_server(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has closed."""
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    return closed


def timed_get(base_url: str, path: str) -> tuple[int, float]:
    started = time.monotonic()
    # A generous timeout: this is about being answered at all; the time is printed.
    response = httpx.get(f"{base_url}{path}", timeout=30)
    return response.status_code, time.monotonic() - started


@pytest.mark.parametrize(
    "first_bytes",
    [b"", b"GET /inventory HTTP/1.1\r\nHost: flood\r\nX-Slow: "],
    ids=["idle", "slowloris"],
)
def test_probes_and_scrapes_are_answered_during_a_connection_flood(
    start_app, fd_room: None, first_bytes: bytes
) -> None:
    _, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    with flood(url, first_bytes) as socks:
        results = {path: timed_get(url, path) for path in ("/healthz", "/readyz", "/metrics")}
        print(
            f"\n{len(socks)} connections open: "
            + ", ".join(
                f"{path} {status} in {seconds * 1000:.0f} ms"
                for path, (status, seconds) in results.items()
            )
        )
        assert {path: status for path, (status, _) in results.items()} == {
            "/healthz": 200,
            "/readyz": 200,
            "/metrics": 200,
        }
        # Orders go through too, and the room was made from the flood's connections.
        assert httpx.post(f"{url}/order", timeout=30).status_code == 200
        assert closed_by_server(socks) >= FLOOD - 2000
