"""The Alertmanager webhook's port under a flood of idle and slowloris connections.

The real receiver (`WebhookServer`) on a loopback port, with real sockets. Before:
no connection cap (1,100 idle connections timed out `/healthz` and `/metrics` for
10 s, with the open-files limit of the day), and a connection that never sent a
request was kept for aiohttp's default hour. Now at most 512 at once, the oldest
closed first, and any connection without a complete request for 15 s is closed
(`runtime/bounded_http.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from promdemo_operator.runtime.bounded_http import MAX_CONNECTIONS
from promdemo_operator.runtime.handlers.webhook import (
    KEEPALIVE_TIMEOUT_SECONDS,
    AlertReceiver,
    WebhookServer,
)
from tests.support.sockets import closed_by_server, many_open_files

pytestmark = pytest.mark.timeout(120)

IDLE = 2000
SLOWLORIS = 20


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """The receiver (token "t", no PromDemo) on a free loopback port, on a loop of its own."""
    with many_open_files():
        loop = asyncio.new_event_loop()
        server = WebhookServer(AlertReceiver("t", loops=list), "127.0.0.1", 0)
        loop.run_until_complete(server.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        yield server
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_a_flood_of_idle_connections_neither_starves_the_receiver_nor_stays(
    webhook: WebhookServer,
) -> None:
    url = f"http://127.0.0.1:{webhook.port}"
    flood = [socket.create_connection(("127.0.0.1", webhook.port)) for _ in range(IDLE)]
    slow = []
    for _ in range(SLOWLORIS):
        sock = socket.create_connection(("127.0.0.1", webhook.port))
        sock.sendall(b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(sock)
    opened = time.monotonic()
    try:
        # Alertmanager's notification and a probe are still answered, at once.
        for _ in range(5):
            answer = httpx.post(f"{url}/alertmanager", json={"alerts": []},
                                headers={"Authorization": "Bearer t"}, timeout=2)  # fmt: skip
            assert answer.status_code == 200
            assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        assert webhook.connections <= MAX_CONNECTIONS
        # The slowloris clients go on dripping; every connection is closed by the
        # receiver within the idle timeout of its opening (or earlier, over the cap).
        while time.monotonic() < opened + KEEPALIVE_TIMEOUT_SECONDS + 3:
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            time.sleep(1)
        left = [s for s in flood + slow if not closed_by_server(s)]
        assert not left, f"{len(left)} of {IDLE + SLOWLORIS} connections still open"
        assert webhook.connections == 0
    finally:
        for sock in flood + slow:
            sock.close()
