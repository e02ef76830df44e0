"""The production server: waitress in one process, with a graceful SIGTERM.

One process, many threads: the inventory lives in the process (per pod), so
several worker processes would mean several inventories behind one pod.
Up to `PROMDEMO_THREADS` (300) threads hold the seed's 300 concurrent orders,
each sleeping in the simulated dependency; probes and scrapes run on threads of
their own (workers.py). What a connection may cost is bounded in
connections.py: at the connection limit the connections idle longest make
room, so kubelet's probes and Prometheus's scrapes are accepted during a flood.

Waitress has no graceful stop, so this module runs waitress's event loop
itself and, on SIGTERM or SIGINT:

1. `/readyz` answers 503 at once (the signal handler only sets a flag);
2. connections already waiting in the kernel's accept queue are accepted, then
   the listening sockets are closed: new connections are refused, none that
   was accepted is dropped;
3. every request already received is answered, with `Connection: close`;
   keep-alive connections idle between requests are closed at once; a
   connection still sending its request (or not started) is closed once it
   has been silent for a second, and at the latest 5 s into the drain;
4. the process exits 0 once no request is in flight and every answer was
   written, or 1 if that did not happen within `PROMDEMO_SHUTDOWN_TIMEOUT`.
   A second signal stops at once (exit 1).

This reaches into waitress's channels (`active_channels`, `requests`,
`will_close`, ...): pyproject pins waitress 3.x and the integration tests
exercise every step above against the real server.
"""

from __future__ import annotations

import logging
import resource
import select
import signal
import time
from collections import deque
from types import FrameType
from typing import TYPE_CHECKING, Any

from waitress import wasyncore
from waitress.adjustments import Adjustments

from promdemo_app.connections import Limits, Listener
from promdemo_app.lifecycle import Lifecycle
from promdemo_app.reset import describe_reset_policy
from promdemo_app.settings import Settings
from promdemo_app.web import create_app
from promdemo_app.workers import REPORT_INTERVAL_SECONDS, Dispatcher

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("promdemo_app.server")

BACKLOG = 2048
MIN_CONNECTION_LIMIT = 2000
# How long one turn of the event loop may block: bounds how late the drain
# starts after the signal (the handler cannot wake the loop safely).
LOOP_TIMEOUT_SECONDS = 0.25
# How often the connection timeouts are applied.
MAINTENANCE_INTERVAL_SECONDS = 1.0
# Request line and headers together; larger is answered 431.
MAX_HEADER_BYTES = 64 * 1024
# Waitress refuses bodies over this many times PROMDEMO_MAX_BODY_BYTES itself
# (413, before reading them); bodies in between are read and refused by the
# app, so that the 413 shows in its metrics.
BODY_READ_FACTOR = 2


def _ensure_fd_limit(needed: int) -> int:
    """Raise the open-files soft limit towards `needed`; returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else needed


def connection_limit(threads: int) -> int:
    """Connections per listening address: max(2000, 2 x threads), within the open-files limit."""
    wanted = max(MIN_CONNECTION_LIMIT, 2 * threads)
    # Each connection is a file descriptor; keep room for the rest of the process.
    fd_limit = _ensure_fd_limit(wanted + 256)
    limit = max(100, min(wanted, fd_limit - 256))
    if limit < wanted:
        log.warning("open-files limit %d caps connections at %d", fd_limit, limit)
    return limit


class Server:
    """Waitress serving `app`, with the graceful stop described in the module docstring."""

    def __init__(
        self,
        app: WSGIApplication,
        settings: Settings,
        lifecycle: Lifecycle,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self.limits = limits or Limits(connections=connection_limit(settings.threads))
        self._force_stop = False
        self._drain_started: float | None = None
        self._drain_started_wall = 0.0
        self._next_maintenance = 0.0
        self._next_report = time.monotonic() + REPORT_INTERVAL_SECONDS
        # Request bodies to free on this thread (connections.Parser).
        self._released: deque[Any] = deque()

        body_limit = settings.max_body_bytes * BODY_READ_FACTOR
        adj = Adjustments(
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            backlog=BACKLOG,
            # (The connection limit and timeouts are the Listener's: `self.limits`.)
            # select() cannot watch file descriptors above 1023.
            asyncore_use_poll=True,
            ident="promdemo",
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=body_limit,
            # Never spool a body to a temporary file: the root filesystem is read-only.
            inbuf_overflow=body_limit + 1,
        )
        self._map: dict[int, wasyncore.dispatcher] = {}
        self._dispatcher = Dispatcher(settings.threads)
        self.listeners = [
            Listener(
                app,
                map=self._map,
                dispatcher=self._dispatcher,
                adj=adj,
                sockinfo=sockinfo,
                limits=self.limits,
                lifecycle=lifecycle,
                released=self._released,
            )
            for sockinfo in adj.listen
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(str(s.effective_host), int(s.effective_port)) for s in self.listeners]

    def run(self) -> int:
        """Serve until a signal, then drain; returns the process's exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        for host, port in self.addresses:
            shown = f"[{host}]" if ":" in host else host
            log.info(
                "listening on http://%s:%d (up to %d threads, %d connections)",
                shown,
                port,
                self.settings.threads,
                self.limits.connections,
            )
        try:
            while True:
                self.step()
                if self._force_stop:
                    log.warning("second signal: stopping without waiting for requests")
                    return self._finish(1)
                if self.lifecycle.draining:
                    code = self._drain_step()
                    if code is not None:
                        return self._finish(code)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def step(self, timeout: float = LOOP_TIMEOUT_SECONDS) -> None:
        """One turn of the event loop, then the timeouts and the queue report when due."""
        wasyncore.loop(timeout=timeout, map=self._map, use_poll=True, count=1)
        released = self._released
        while released:
            released.popleft().getbuf().close()
        now = time.monotonic()
        if now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_INTERVAL_SECONDS
            wall = time.time()
            for listener in self.listeners:
                listener.maintain(wall)
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL_SECONDS
            self._dispatcher.report()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of the event loop, so it
        # only sets flags; the loop does the work on its next turn.
        if self.lifecycle.draining:
            self._force_stop = True
        else:
            self.lifecycle.start_draining()

    def _drain_step(self) -> int | None:
        """One turn of the drain; an exit code once it is over, else None."""
        now = time.monotonic()
        if self._drain_started is None:
            self._drain_started = now
            self._drain_started_wall = time.time()
            self._stop_listening()
            log.info(
                "draining: not ready, no new connections, %d request(s) in flight; "
                "exiting when they are answered (at most %gs)",
                self.lifecycle.in_flight,
                self.settings.shutdown_timeout_seconds,
            )
        wall = time.time()
        for listener in self.listeners:
            for channel in listener.channels:
                channel.check_drain(wall, self._drain_started_wall)
        open_channels = sum(len(s.active_channels) for s in self.listeners)
        in_flight = self.lifecycle.in_flight
        if not open_channels and not in_flight:
            log.info("drained in %.2fs; exiting", now - self._drain_started)
            return 0
        if now - self._drain_started >= self.settings.shutdown_timeout_seconds:
            log.warning(
                "shutdown timeout (%gs): exiting with %d request(s) in flight, "
                "%d connection(s) open",
                self.settings.shutdown_timeout_seconds,
                in_flight,
                open_channels,
            )
            return 1 if in_flight else 0
        return None

    def _stop_listening(self) -> None:
        for listener in self.listeners:
            # Accept what already completed the TCP handshake: closing the socket
            # with connections in its queue would reset them.
            poller = select.poll()
            poller.register(listener.socket.fileno(), select.POLLIN)
            for _ in range(BACKLOG // 16):
                if not poller.poll(0):
                    break
                listener.handle_accept()
            listener.accepting = False
            # The dispatcher's close, not the server's: that one also closes the
            # trigger that worker threads use to wake this loop.
            wasyncore.dispatcher.close(listener)

    def _finish(self, code: int) -> int:
        self.close(timeout=1.0 if code == 0 else 0.0)
        return code

    def close(self, timeout: float = 1.0) -> None:
        """Stop the threads and close every socket (no drain: see run())."""
        # Threads still busy (only after a timeout or a second signal) are
        # daemon threads: they end with the process.
        self._dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        wasyncore.close_all(self._map)


def serve(settings: Settings) -> int:
    """Build the app and serve it until SIGTERM; returns the exit code."""
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle=lifecycle)
    server = Server(app, settings, lifecycle)
    log.info("%s", describe_reset_policy(settings))
    return server.run()
