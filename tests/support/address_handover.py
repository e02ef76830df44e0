"""One pod address that changes hands between a read and a reset, for the heal tiers.

`AddressHandover(reads_to, resets_to)` listens on a loopback address and sends each
new TCP connection on by the method of its first request: a `POST` (the engine's
reset) to `resets_to`, anything else (the check's `GET /metrics`) to `reads_to`.
So the engine reads pod A at the address and its reset lands on pod B: pod A
deleted and its IP given to pod B in between, made deterministic. A connection is
routed once and then kept (as a pod IP is). `routed` lists where each went.
"""

from __future__ import annotations

import socket
import urllib.parse

from tests.support.relay import Relay


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not an http://host:port URL: {url}")
    return parts.hostname, parts.port


class AddressHandover(Relay):
    """A listener on `host` routing each connection to `reads_to` or `resets_to`."""

    #: A forwarded connection idle this long is closed (nothing is held for ever).
    idle_seconds = 30.0

    def __init__(self, reads_to: str, resets_to: str, host: str = "127.0.0.1") -> None:
        super().__init__(host, name="address-handover")
        self._reads = _address(reads_to)
        self._resets = _address(resets_to)
        self.routed: list[str] = []  # "read" | "reset", one per connection
        self.url = f"http://{host}:{self.port}"

    def _forward(self, client: socket.socket) -> None:
        client.settimeout(self.idle_seconds)
        try:
            first = client.recv(65536)
        except OSError:
            return
        if not first:
            return
        reset = first.startswith(b"POST ")
        self.routed.append("reset" if reset else "read")
        self.relay(client, self._resets if reset else self._reads, first)
