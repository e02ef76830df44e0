"""`/healthz` and `/readyz` on a port of their own, served by a small process of their own.

Kubernetes' convention, and the reason: on the service port the probes would
wait behind whatever else that port is doing (200 clients looping /metrics,
connections that pipeline requests and never read, a flood of idle sockets).
This server shares nothing with gunicorn's worker: its own listening socket
and its own process (`ProbeProcess`, forked from the worker before the worker
starts any thread), so neither the traffic to the orders or metrics paths nor
the worker's threads contending for the interpreter lock can delay it. The
worker tells it when the drain starts (one byte on a pipe: `/readyz` turns
503); when the worker exits, the pipe's end tells it to exit too, so `/healthz`
answers exactly as long as the worker lives.

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
import os
import selectors
import signal
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
    """Serves the probes from `listener`: `run()` here, or `start()` on a daemon thread.

    `lifecycle` is anything with a `draining` flag; `control`, a pipe's read end
    whose byte b"d" means draining and whose end means stop.
    """

    def __init__(
        self,
        listener: socket.socket,
        lifecycle: Lifecycle | _Flag,
        *,
        control: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.lifecycle = lifecycle
        self.control = control
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
        self._prepare()
        self._thread.start()

    def run(self) -> None:
        """Serve in this thread until stopped (or the control pipe ends)."""
        self._prepare()
        self._run()

    def _prepare(self) -> None:
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ)
        if self.control is not None:
            self._selector.register(self.control, selectors.EVENT_READ)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                for key, events in self._selector.select(POLL_SECONDS):
                    if key.fileobj is self.listener:
                        self._accept()
                    elif key.fileobj == self.control:
                        self._control()
                    else:
                        self._serve(key.fd, events)
                self._expire(time.monotonic())
        except Exception:  # the probes must never die silently
            log.exception("the probe server stopped")
        finally:
            for fd in list(self._conns):
                self._close(fd)
            self._selector.close()

    def _control(self) -> None:
        data = os.read(self.control, 64) if self.control is not None else b""
        if not data:  # the worker is gone
            self._stopped.set()
        elif b"d" in data:
            self.lifecycle.draining = True

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


class _Flag:
    """The probe process's copy of the worker's state: only whether it drains."""

    def __init__(self) -> None:
        self.draining = False


class ProbeProcess:
    """The probe server in a child process of the worker, told of the drain by a pipe."""

    def __init__(self, listener: socket.socket) -> None:
        read_end, self._write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the probe process
            os.close(self._write_end)
            code = 0
            try:
                # It lives exactly as long as the worker: signals sent to the whole
                # process group (a terminal's Ctrl-C) are the worker's to act on.
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(sig, signal.SIG_IGN)
                ProbeServer(listener, _Flag(), control=read_end).run()
            except BaseException:
                code = 1
            finally:
                # Not sys.exit: nothing of the worker's (atexit, gunicorn's
                # clean-up) may run in this copy of it.
                os._exit(code)
        os.close(read_end)
        self.pid = pid

    def set_draining(self) -> None:
        """Tell the probe process that /readyz is now 503 (safe in a signal handler)."""
        with contextlib.suppress(OSError):  # the probe process is gone
            os.write(self._write_end, b"d")
