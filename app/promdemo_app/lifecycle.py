"""Readiness and in-flight requests, shared by the web app and the server.

The server flips `draining` when SIGTERM arrives; `/readyz` reads it and turns
503 at once, so Kubernetes stops sending traffic while in-flight orders finish.
`in_flight` counts requests the WSGI app has not finished answering; the server
waits for it to reach zero before it exits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.wsgi import ClosingIterator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class Lifecycle:
    """Whether the process still takes traffic, and how many requests are in flight."""

    def __init__(self) -> None:
        # A plain bool: it is set from a signal handler, where taking a lock
        # that the interrupted main thread may hold would deadlock.
        self.draining = False
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return not self.draining

    def start_draining(self) -> None:
        self.draining = True

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def track(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap a WSGI app so that `in_flight` covers each request until its body is sent."""

        def tracked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            self._enter()
            try:
                body = app(environ, start_response)
            except BaseException:
                self._leave()
                raise
            # The server calls close() once the whole body was handed over.
            return ClosingIterator(body, self._leave)

        return tracked
