"""One pod address that changes hands between a read and a reset, for the heal tiers.

`AddressHandover(reads_to, resets_to)` listens on a loopback address and sends each
new TCP connection on by the method of its first request: a `POST` (the engine's
reset) to `resets_to`, anything else (the check's `GET /metrics`) to `reads_to`.
So the engine reads pod A at the address and its reset lands on pod B: pod A
deleted and its IP given to pod B in between, made deterministic. A connection is
routed once and then kept (as a pod IP is). `routed` lists where each went.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse

#: A forwarded connection idle this long is closed (nothing is held for ever).
IDLE_SECONDS = 30.0


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not an http://host:port URL: {url}")
    return parts.hostname, parts.port


class AddressHandover:
    """A listener on `host` routing each connection to `reads_to` or `resets_to`."""

    def __init__(self, reads_to: str, resets_to: str, host: str = "127.0.0.1") -> None:
        self._reads = _address(reads_to)
        self._resets = _address(resets_to)
        self.routed: list[str] = []  # "read" | "reset", one per connection
        self._stop = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.5)
        self.url = f"http://{host}:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> AddressHandover:
        thread = threading.Thread(target=self._accept, name="address-handover", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._forward, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _forward(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            client.settimeout(IDLE_SECONDS)
            try:
                first = client.recv(65536)
            except OSError:
                return
            if not first:
                return
            reset = first.startswith(b"POST ")
            self.routed.append("reset" if reset else "read")
            try:
                upstream = socket.create_connection(
                    self._resets if reset else self._reads, timeout=5
                )
            except OSError:
                return
            with contextlib.closing(upstream):
                upstream.sendall(first)
                pump = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
                pump.start()
                _copy(client, upstream)
                pump.join(timeout=IDLE_SECONDS)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """Bytes from `source` to `sink` until `source` ends; then `sink` is told no more come."""
    source.settimeout(IDLE_SECONDS)
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
