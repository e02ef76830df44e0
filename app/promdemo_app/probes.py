"""`/healthz` and `/readyz` on a port of their own, served by one small thread.

Kubernetes' convention, and the reason: on the service port the probes would
wait behind whatever else that port is doing (200 clients looping /metrics,
connections that pipeline requests and never read, a flood of idle sockets).
This server shares nothing with gunicorn but the process: its own listening
socket, its own thread and its own limits, so no traffic to the orders or
metrics paths can delay it.

It is deliberately tiny: one request per connection (answered with
`Connection: close`, as kubelet's probes expect), answers of a few dozen
bytes, and every connection bounded: at most `MAX_CONNECTIONS` open (the
oldest is closed to make room, so a flood of this port cannot lock the
kubelet out), `REQUEST_TIMEOUT` seconds to send the request, `MAX_REQUEST`
bytes of request line and headers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from promdemo_app.lifecycle import Lifecycle

log = logging.getLogger("promdemo_app.probes")

MAX_CONNECTIONS = 256
REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 8192
POLL_SECONDS = 0.5
PATHS = ("/healthz", "/readyz")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
REASONS |= {431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    answer: bytes = b""


def answer(status: int, body: dict[str, str], head: bool = False) -> bytes:
    """One complete HTTP/1.1 response that closes the connection."""
    data = json.dumps(body).encode() + b"\n"
    reason = REASONS.get(status, "")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else data)


def respond(request: bytes, lifecycle: Lifecycle) -> bytes:
    """The answer to one request head (request line and headers, as received)."""
    line = request.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return answer(400, {"error": "bad request line"})
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    path = target.decode("latin-1")
    if path not in PATHS:
        return answer(404, {"error": f"not found: this port serves {' and '.join(PATHS)}"})
    if method not in (b"GET", b"HEAD"):
        return answer(405, {"error": f"method {method.decode('latin-1')!r} is not allowed here"})
    head = method == b"HEAD"
    if path == "/healthz":
        return answer(200, {"status": "ok"}, head)
    if lifecycle.draining:
        return answer(503, {"status": "draining"}, head)
    return answer(200, {"status": "ready"}, head)


class ProbeServer:
    """Serves the probes from `listener` on a daemon thread until the process ends."""

    def __init__(
        self,
        listener: socket.socket,
        lifecycle: Lifecycle,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.lifecycle = lifecycle
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        # Oldest first: the one closed when a new connection needs room.
        self._conns: OrderedDict[int, _Conn] = OrderedDict()
        self._selector = selectors.DefaultSelector()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probes", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    def start(self) -> None:
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                for key, events in self._selector.select(POLL_SECONDS):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._serve(key.fd, events)
                self._expire(time.monotonic())
        except Exception:  # the probes must never die silently
            log.exception("the probe server stopped")
        finally:
            for fd in list(self._conns):
                self._close(fd)
            self._selector.close()

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: try again on the next turn
                log.warning("probe port: cannot accept: %s", e.strerror or e)
                return
            if len(self._conns) >= self.max_connections:
                self._close(next(iter(self._conns)))
            sock.setblocking(False)
            conn = _Conn(sock, time.monotonic() + self.request_timeout)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ)

    def _serve(self, fd: int, events: int) -> None:
        conn = self._conns.get(fd)
        if conn is None:
            return
        if conn.answer:
            self._send(fd, conn)
            return
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        if not data:
            self._close(fd)
            return
        conn.received += data
        end = conn.received.find(b"\n\r\n")
        if end < 0:
            end = conn.received.find(b"\n\n")
        if end >= 0:
            conn.answer = respond(bytes(conn.received[:end]), self.lifecycle)
        elif len(conn.received) > MAX_REQUEST:
            conn.answer = answer(431, {"error": f"request head over {MAX_REQUEST} bytes"})
        else:
            return
        self._selector.modify(conn.sock, selectors.EVENT_WRITE)
        self._send(fd, conn)

    def _send(self, fd: int, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.answer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        conn.answer = conn.answer[sent:]
        if not conn.answer:
            self._close(fd)

    def _expire(self, now: float) -> None:
        # Oldest first, and every deadline is its connection's start + the timeout.
        while self._conns:
            fd, conn = next(iter(self._conns.items()))
            if conn.deadline > now:
                return
            self._close(fd)

    def _close(self, fd: int) -> None:
        conn = self._conns.pop(fd, None)
        if conn is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()
