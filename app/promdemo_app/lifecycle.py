"""Readiness and requests in flight, shared by the web app, its metrics and the server.

The server flips `draining` when SIGTERM arrives; `/readyz` reads it and turns
503 at once, so Kubernetes stops sending traffic while in-flight orders finish.
`enter()`/`leave()` (called by tracking.py, once per request) count requests
the app is answering, in total (the server waits for zero, and for every
answer to be sent, before it exits) and per measured route (the
`http_requests_in_progress` gauge reads them when scraped).
"""

from __future__ import annotations

import socket
import threading
import time


class Lifecycle:
    """Whether the process still takes traffic, and which requests are in flight."""

    def __init__(self) -> None:
        # A plain bool: it is set from a signal handler, where taking a lock
        # that the interrupted main thread may hold would deadlock.
        self.draining = False
        self._in_flight = 0
        self._by_route: dict[str, int] = {}
        # Requests whose answer is being written: socket and when the app answered.
        self._writing: dict[int, tuple[socket.socket, float]] = {}
        # Requests whose body is being read: socket and when the read started.
        self._receiving: dict[int, tuple[socket.socket, float]] = {}
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return not self.draining

    def start_draining(self) -> None:
        self.draining = True

    @property
    def in_flight(self) -> int:
        """Requests the app is answering, probes included."""
        return self._in_flight

    def in_progress(self, route: str) -> int:
        """Requests in flight on one measured route."""
        return self._by_route.get(route, 0)

    def enter(self, route: str | None) -> None:
        """A request starts; `route` is its label, None when it is not measured."""
        with self._lock:
            self._in_flight += 1
            if route is not None:
                self._by_route[route] = self._by_route.get(route, 0) + 1

    def leave(self, route: str | None) -> None:
        """The app has answered the request (or failed to)."""
        with self._lock:
            self._in_flight -= 1
            if route is not None:
                self._by_route[route] -= 1

    def writing(self, key: int, sock: socket.socket) -> None:
        """The app answered on `sock`; the server is writing the answer (drain.py)."""
        self._writing[key] = (sock, time.monotonic())

    def written(self, key: int) -> None:
        """The answer was written (or the connection failed)."""
        self._writing.pop(key, None)

    def stalled_writes(self, older_than: float) -> list[socket.socket]:
        """Sockets whose answer has been being written for over `older_than` seconds."""
        cutoff = time.monotonic() - older_than
        return [sock for sock, since in list(self._writing.values()) if since < cutoff]

    def receiving(self, key: int, sock: socket.socket) -> None:
        """The app waits for more of a request's body on `sock` (tracking.py)."""
        self._receiving[key] = (sock, time.monotonic())

    def received(self, key: int) -> None:
        self._receiving.pop(key, None)

    def stalled_reads(self, older_than: float) -> list[socket.socket]:
        """Sockets on which the app has waited for body bytes for over `older_than` seconds."""
        cutoff = time.monotonic() - older_than
        return [sock for sock, since in list(self._receiving.values()) if since < cutoff]
