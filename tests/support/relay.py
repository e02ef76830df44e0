"""A TCP listener on a loopback address that hands each connection to a thread of its
own and relays it to an upstream address the subclass picks (`_forward`): the part
the test network's stand-ins (`serviceproxy.ServiceProxy`, kube-proxy's part, and
`address_handover.AddressHandover`, an address changing hands) share.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self


class Relay:
    """Listens on `host` (a free port) until the `with` block ends; `_forward` decides."""

    #: A relayed connection idle this long is closed (nothing is held for ever).
    idle_seconds = 30.0

    def __init__(self, host: str = "127.0.0.1", *, name: str = "relay") -> None:
        self._name = name
        self._stop = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        thread = threading.Thread(target=self._accept, name=self._name, daemon=True)
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
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        """Pick the upstream for `client` and `relay` to it (or return: it is closed)."""
        raise NotImplementedError

    def relay(self, client: socket.socket, upstream: tuple[str, int], first: bytes = b"") -> None:
        """Connect to `upstream`, send `first` (bytes already read), then copy both ways
        until both sides are done; a refused connection closes `client`."""
        try:
            sink = socket.create_connection(upstream, timeout=5)
        except OSError:
            return
        with contextlib.closing(sink):
            if first:
                sink.sendall(first)
            pump = threading.Thread(target=self._copy, args=(sink, client), daemon=True)
            pump.start()
            self._copy(client, sink)
            pump.join(timeout=self.idle_seconds)

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        """Bytes from `source` to `sink` until `source` ends; then `sink` is told no more come."""
        source.settimeout(self.idle_seconds)
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
