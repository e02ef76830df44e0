"""Connection floods against the real server: the probes are still answered.

2,100 connections was above the service port's connection limit (2,000; 4,096 now). On
waitress's own listener, kubelet's `/healthz` waited in the accept queue until
the pod was restarted. The probes now have a port and a thread of their own
(probes.py), so a flood of the service port cannot reach them; the service
port itself serves again once the flood's connections end (gunicorn gives a
new connection 5 s of a thread to send its first byte, then parks it for the
keep-alive timeout: docs/app.md says what that costs).
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
def test_probes_are_answered_during_a_connection_flood(
    start_app, fd_room: None, first_bytes: bytes
) -> None:
    proc, url = start_app(env={"PROMDEMO_SIMULATION": "off"})
    with flood(url, first_bytes) as socks:
        results = {path: timed_get(proc.probe_url, path) for path in ("/healthz", "/readyz")}
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
        }
    # The flood over, the service port answers scrapes and orders again.
    started = time.monotonic()
    assert httpx.get(f"{url}/metrics", timeout=60).status_code == 200
    assert httpx.post(f"{url}/order", timeout=60).status_code == 200
    print(f"service port answering again {time.monotonic() - started:.1f}s after the flood")
