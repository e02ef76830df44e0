"""The production server: waitress in one process, with a graceful SIGTERM.

One process, many threads: the inventory lives in the process (per pod), so
several worker processes would mean several inventories behind one pod.
`PROMDEMO_THREADS` (300) threads hold the seed's 300 concurrent orders, each
sleeping in the simulated dependency; the connection limit and the listen
backlog are well above that, so a burst is queued, never refused. Probes and
scrapes run on a few threads of their own, so a full house of slow orders does
not make kubelet or Prometheus time out.

Waitress has no graceful stop, so this module runs waitress's event loop
itself and, on SIGTERM or SIGINT:

1. `/readyz` answers 503 at once (the signal handler only sets a flag);
2. connections already waiting in the kernel's accept queue are accepted, then
   the listening sockets are closed: new connections are refused, none that
   was accepted is dropped;
3. every request already received is answered, with `Connection: close`;
   keep-alive connections sitting idle between requests are closed, and a new
   connection gets a few seconds to send its first request;
4. the process exits 0 once no request is in flight and every answer was
   written, or 1 if that did not happen within `PROMDEMO_SHUTDOWN_TIMEOUT`.
   A second signal stops at once (exit 1).

This reaches into waitress's channels (`active_channels`, `requests`,
`will_close`, ...): pyproject pins waitress 3.x and the integration tests
exercise every step above against the real server.
"""

from __future__ import annotations

import json
import logging
import resource
import select
import signal
import time
from types import FrameType
from typing import TYPE_CHECKING

from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

from promdemo_app.lifecycle import Lifecycle
from promdemo_app.settings import Settings
from promdemo_app.web import create_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("promdemo_app.server")

BACKLOG = 2048
MIN_CONNECTION_LIMIT = 2000
# How long one turn of the event loop may block: bounds how late the drain
# starts after the signal (the handler cannot wake the loop safely).
LOOP_TIMEOUT_SECONDS = 0.25
# While draining, a connection that has not sent anything yet gets this long
# to send its first request before it is closed.
FIRST_REQUEST_GRACE_SECONDS = 5.0
# Extra room over PROMDEMO_MAX_BODY_BYTES before waitress itself refuses a body,
# so that the app (and its metrics) answers the usual 413.
BODY_SLACK_BYTES = 1024 * 1024


# Probes and scrapes get threads of their own: with every worker busy on a slow
# order (the seed's 300 concurrent orders on 300 threads), kubelet's probes and
# Prometheus's scrape would otherwise wait behind them and time out.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_THREADS = 4


class ProbeFirstDispatcher(ThreadedTaskDispatcher):
    """Runs requests for PROBE_PATHS on a small pool of their own, the rest on this one."""

    def __init__(self, probe_threads: int = PROBE_THREADS) -> None:
        super().__init__()
        self.probes = ThreadedTaskDispatcher()
        self.probes.set_thread_count(probe_threads)

    def add_task(self, task: HTTPChannel) -> None:  # type: ignore[override]
        # Called with the channel's requests_lock held, its next request parsed.
        requests = getattr(task, "requests", None)
        if requests and requests[0].path in PROBE_PATHS:
            self.probes.add_task(task)
        else:
            super().add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self.probes.shutdown(cancel_pending, timeout)
        return super().shutdown(cancel_pending, timeout)


class JsonErrorTask(ErrorTask):
    """Waitress's own errors (bad HTTP, oversized body or headers) as JSON, not text."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason.lower()}: {error.body}"}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _channel_class(lifecycle: Lifecycle) -> type[HTTPChannel]:
    class DrainingTask(WSGITask):
        def build_response_header(self) -> bytes:
            # While draining, every answer ends its connection: the client
            # reconnects, to a pod that is still ready.
            if lifecycle.draining:
                self.set_close_on_finish()
            return super().build_response_header()

    class Channel(HTTPChannel):
        task_class = DrainingTask
        error_task_class = JsonErrorTask

    return Channel


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


class Server:
    """Waitress serving `app`, with the graceful stop described in the module docstring."""

    def __init__(self, app: WSGIApplication, settings: Settings, lifecycle: Lifecycle) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self._force_stop = False
        self._drain_started: float | None = None
        self._drain_started_wall = 0.0

        wanted = max(MIN_CONNECTION_LIMIT, 2 * settings.threads)
        # Each connection is a file descriptor; keep room for the rest of the process.
        fd_limit = _ensure_fd_limit(wanted + 256)
        connection_limit = max(100, min(wanted, fd_limit - 256))
        if connection_limit < wanted:
            log.warning("open-files limit %d caps connections at %d", fd_limit, connection_limit)
        body_limit = settings.max_body_bytes + BODY_SLACK_BYTES

        self._map: dict[int, wasyncore.dispatcher] = {}
        self._dispatcher = ProbeFirstDispatcher()
        self._dispatcher.set_thread_count(settings.threads)
        create_server(
            lifecycle.track(app),
            map=self._map,
            _dispatcher=self._dispatcher,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            connection_limit=connection_limit,
            backlog=BACKLOG,
            # select() cannot watch file descriptors above 1023.
            asyncore_use_poll=True,
            ident="promdemo",
            max_request_body_size=body_limit,
            # Never spool a body to a temporary file: the root filesystem is read-only.
            inbuf_overflow=body_limit + 1,
        )
        self.listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
        channel_class = _channel_class(lifecycle)
        for listener in self.listeners:
            listener.channel_class = channel_class

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
            log.info("listening on http://%s:%d (%d threads)", shown, port, self.settings.threads)
        try:
            while True:
                wasyncore.loop(timeout=LOOP_TIMEOUT_SECONDS, map=self._map, use_poll=True, count=1)
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
        self._close_idle_channels()
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
            for _ in range(BACKLOG):
                if not poller.poll(0):
                    break
                listener.handle_accept()
            listener.accepting = False
            # The dispatcher's close, not the server's: that one also closes the
            # trigger that worker threads use to wake this loop.
            wasyncore.dispatcher.close(listener)

    def _close_idle_channels(self) -> None:
        now = time.time()  # waitress stamps channels with time.time()
        for listener in self.listeners:
            for channel in list(listener.active_channels.values()):
                # The lock orders this with received(), which reads will_close.
                with channel.requests_lock:
                    busy = (
                        channel.requests
                        or channel.request is not None
                        or channel.total_outbufs_len
                        or channel.will_close
                        or channel.close_when_flushed
                    )
                    if busy:
                        continue
                    never_used = channel.last_activity == channel.creation_time
                    waited = now - max(channel.creation_time, self._drain_started_wall)
                    if never_used and waited < FIRST_REQUEST_GRACE_SECONDS:
                        continue
                    # Idle keep-alive, or silent too long: the loop closes it.
                    channel.will_close = True

    def _finish(self, code: int) -> int:
        # Threads still busy (only after a timeout or a second signal) are
        # daemon threads: they end with the process.
        self._dispatcher.shutdown(cancel_pending=True, timeout=1.0 if code == 0 else 0.0)
        wasyncore.close_all(self._map)
        return code


def serve(settings: Settings) -> int:
    """Build the app and serve it until SIGTERM; returns the exit code."""
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle=lifecycle)
    return Server(app, settings, lifecycle).run()
