"""Waitress's connections, bounded: how many, how long each may stay, and how each ends.

- `Listener` never stops accepting. Waitress's own listener stops at its
  connection limit, so 2,000 idle sockets left kubelet's `/healthz` in the
  accept queue until the pod was restarted. At `limit` connections this one
  closes the connections idle longest to make room: a connection waiting for
  an answer is never closed for another.
- `Channel` enforces the timeouts (`Limits`), answers waitress's own errors
  (malformed HTTP, oversized headers or body) as JSON with one log line, and
  after such an answer closes gently: it stops sending, then reads and drops
  what the client is still sending for a while (a lingering close, as nginx
  does), so the client reads its 413 instead of a connection reset.
- `Parser` refuses at once bytes that cannot start an HTTP request (a TLS
  ClientHello), and builds and frees each request body on the event loop's
  thread; a body freed by a worker thread stays in that thread's malloc cache
  (tcache), which made RSS grow with every new body size.

Everything here runs on the event loop's thread unless it says otherwise.
Waitress stamps channels with `time.time()`, so the timeouts use that clock too.
"""

from __future__ import annotations

import heapq
import json
import logging
import select
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import BadRequest

from promdemo_app.lifecycle import Lifecycle

log = logging.getLogger("promdemo_app.connections")

# Bytes that may start a request line (a method is a token, RFC 9110 5.6.2);
# CR and LF may precede it (RFC 9112 2.2).
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_START = _TOKEN | {ord("\r"), ord("\n")}
# Connections accepted per turn of the event loop, so a full accept queue
# (a flood, or kubelet's probe behind it) is emptied in a few turns.
ACCEPT_BATCH = 64


@dataclass(frozen=True)
class Limits:
    """What one connection may take; the defaults are documented in docs/app.md."""

    connections: int = 2000
    # A complete request (headers and body) must arrive within this long of its
    # first byte; a new connection must send one within this long.
    request_timeout: float = 20.0
    # A keep-alive connection with nothing to do is closed after this long.
    idle_timeout: float = 60.0
    # After an error answer: read and drop at most this much, for at most this long.
    linger_bytes: int = 4 * 1024 * 1024
    linger_seconds: float = 5.0
    # While draining, a connection without a complete request is closed once
    # silent this long, and at the latest `drain_grace` after the drain began.
    drain_silence: float = 1.0
    drain_grace: float = 5.0


def _channel_class(lifecycle: Lifecycle, limits: Limits, released: deque[Any]) -> type[HTTPChannel]:
    """A Channel class bound to this server's lifecycle, limits and release queue."""

    class Parser(HTTPRequestParser):
        # Set by parse_header(); a request rejected before that has neither
        # (waitress's own error paths log `request.path`).
        path = ""
        command = ""

        def received(self, data: bytes) -> int:
            if not self.header_plus and self.body_rcv is None and not self.completed:
                start = data.lstrip(b"\r\n")[:1]
                if start and start[0] not in _START:
                    # Not HTTP (a TLS ClientHello starts with 0x16): waiting for a
                    # blank line that never comes would hold the connection.
                    self.error = BadRequest("this is not an HTTP request")
                    self.completed = True
                    return len(data)
            consumed = super().received(data)
            if self.completed and self.body_rcv is not None:
                # Build the body's buffer here, on the event loop's thread...
                self.body_rcv.getfile()
            return consumed

        def close(self) -> None:
            # ...and free it there too (see the module docstring). Runs on a
            # worker thread: the event loop empties `released` on its next turn.
            if self.body_rcv is not None:
                released.append(self.body_rcv)

    class DrainingTask(WSGITask):
        def build_response_header(self) -> bytes:
            # While draining, every answer ends its connection: the client
            # reconnects, to a pod that is still ready.
            if lifecycle.draining:
                self.set_close_on_finish()
            return super().build_response_header()

    class JsonErrorTask(ErrorTask):
        """Waitress's own errors (bad HTTP, oversized body or headers) as JSON."""

        def execute(self) -> None:
            error = self.request.error
            message = f"{error.reason.lower()}: {error.body}"
            body = json.dumps({"error": message}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)
            self.channel.linger_on_close = True
            log.info("answered %d to %s: %s", error.code, self.channel.addr[0], message)

    class Channel(HTTPChannel):
        parser_class = Parser
        task_class = DrainingTask
        error_task_class = JsonErrorTask

        linger_on_close = False  # set by JsonErrorTask (a worker thread)
        lingering = False
        receiving_since = 0.0  # first byte of the request being received
        _linger_until = 0.0
        _linger_left = 0

        # -- waitress's hooks ------------------------------------------------
        def received(self, data: bytes) -> bool:
            if self.request is None and data:
                # (A request started further into `data`, after a pipelined
                # one, gets this stamp too: at most one read's difference.)
                self.receiving_since = time.time()
            return super().received(data)

        def readable(self) -> bool:
            return True if self.lingering else super().readable()

        def writable(self) -> bool:
            return False if self.lingering else super().writable()

        def handle_read(self) -> None:
            if not self.lingering:
                super().handle_read()
                return
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            self._linger_left -= len(data)
            if not data or self._linger_left <= 0:
                self.close_now()

        def handle_close(self) -> None:
            if self.linger_on_close and not self.lingering and self.connected:
                self._start_lingering()
            else:
                self.close_now()

        # -- ours --------------------------------------------------------------
        def close_now(self) -> None:
            self.lingering = False
            self.linger_on_close = False
            super().handle_close()

        def _start_lingering(self) -> None:
            # Stop sending (the client sees the end of the answer), keep reading.
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                self.close_now()
                return
            self.lingering = True
            self.will_close = self.close_when_flushed = False
            self._linger_until = time.time() + limits.linger_seconds
            self._linger_left = limits.linger_bytes

        @property
        def idle(self) -> bool:
            """Nothing to answer: no request queued or served, nothing left to send."""
            busy = self.requests or self.total_outbufs_len
            return not (busy or self.will_close or self.close_when_flushed)

        def close_if(self, reason: str) -> None:
            """Close the connection if it is (still) idle; `reason` goes to the debug log."""
            # The lock orders this with received(), which reads will_close.
            with self.requests_lock:
                if not self.idle and not self.lingering:
                    return
                log.debug("closing the connection from %s: %s", self.addr[0], reason)
                self.close_now()

        def check_timeouts(self, now: float) -> None:
            if self.lingering:
                if now >= self._linger_until:
                    self.close_now()
            elif not self.idle:
                # Answering: a client that does not read its answer is dropped
                # like an idle one (every send moves last_activity).
                if self.total_outbufs_len and now - self.last_activity > limits.idle_timeout:
                    self.will_close = True
            elif self.request is not None:
                if now - self.receiving_since > limits.request_timeout:
                    self.close_if("request not received in time")
            elif self.last_activity == self.creation_time:
                if now - self.creation_time > limits.request_timeout:
                    self.close_if("no request sent in time")
            elif now - self.last_activity > limits.idle_timeout:
                self.close_if("idle keep-alive connection")

        def check_drain(self, now: float, drain_started: float) -> None:
            """While draining: close idle keep-alives now, silent partial requests soon."""
            if not self.idle or self.lingering:
                return
            if self.request is None and self.last_activity != self.creation_time:
                self.close_if("idle keep-alive connection while draining")
                return
            # A new connection, or a request half-sent: its bytes may be on their way.
            silent = now - max(self.last_activity, drain_started)
            if silent >= limits.drain_silence or now - drain_started >= limits.drain_grace:
                self.close_if("no complete request while draining")

    return Channel


class Listener(TcpWSGIServer):
    """Waitress's TCP listener, accepting even at the limit (see the module docstring)."""

    def __init__(
        self, *args: Any, limits: Limits, lifecycle: Lifecycle, released: deque[Any], **kw: Any
    ) -> None:
        self.limits = limits
        self.channel_class = _channel_class(lifecycle, limits, released)
        self.full = False
        super().__init__(*args, **kw)

    @property
    def channels(self) -> list[Any]:
        return list(self.active_channels.values())

    def readable(self) -> bool:
        # Waitress's readable() also runs its own timeouts and stops accepting at
        # its limit; Server.maintain() and handle_accept() do both here.
        return bool(self.accepting) and not self.full

    def handle_accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            at_limit = len(self.active_channels) >= self.limits.connections
            if at_limit and not self._waiting():
                return
            if at_limit and not self._make_room():
                if not self.full:
                    log.warning(
                        "%d connections, all busy: not accepting until one closes",
                        len(self.active_channels),
                    )
                self.full = True
                return
            try:
                accepted = self.accept()
            except OSError as e:
                # EMFILE and the like: the socket stays in the queue for later.
                log.warning("cannot accept a connection: %s", e.strerror or e)
                return
            if accepted is None:
                return
            conn, addr = accepted
            try:
                self.set_socket_options(conn)
            except OSError:
                conn.close()  # the client left already
                continue
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def _waiting(self) -> bool:
        """Whether a connection waits in the accept queue (room is made only for one)."""
        poller = select.poll()
        poller.register(self.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def _make_room(self) -> bool:
        """Close the connections idle longest (a batch, to sort once); False if none is."""
        batch = max(1, self.limits.connections // 64)
        idle = [c for c in self.active_channels.values() if c.idle or c.lingering]
        # Lingering ones first: they are closing anyway.
        victims = heapq.nsmallest(batch, idle, key=lambda c: (not c.lingering, c.last_activity))
        for channel in victims:
            channel.close_if("making room for a new connection")
        return len(self.active_channels) < self.limits.connections

    def maintain(self, now: float) -> None:
        """Apply the timeouts, and accept again once there is room."""
        for channel in self.channels:
            channel.check_timeouts(now)
        if self.full and len(self.active_channels) < self.limits.connections:
            self.full = False
            log.info("accepting connections again")
        elif self.full:
            self.full = not self._make_room()
