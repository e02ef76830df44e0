"""The production server: gunicorn's gthread worker, configured through its public settings.

One worker process (the inventory lives in the process, so two workers would
be two inventories behind one pod) with `PROMDEMO_THREADS` threads. gunicorn
does the HTTP: parsing and its limits (request line, header count and size),
idle keep-alive and pending-connection timeouts, the connection cap, a
lingering close after an error, and the graceful stop on SIGTERM. This module
only fills in gunicorn's settings and hooks:

- the listening sockets are bound here, before gunicorn starts, and handed to
  it as `fd://N` (a documented form of `bind`), so a taken port or an
  address that is not on this machine is one line from the CLI, and port 0
  (any free port) is logged with the port it got;
- `post_worker_init` forks the probe server (probes.py) from the worker, on
  its own port, and chains the worker's SIGTERM handler so `/readyz` turns 503
  at once; a drain watcher (drain.py) then ends the connections of clients
  that do not read their answers once every request has been answered;
- `worker_exit` says whether the worker left orders unanswered; the process
  exits 1 then (or if the worker had to be killed), else 0.

SIGHUP is gunicorn's reload: a new worker (with a fresh inventory) starts and
the old one finishes its in-flight requests within the shutdown timeout
before it exits, so no order is dropped. SIGINT and SIGQUIT are gunicorn's
quick stop.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from promdemo_app.drain import DrainWatcher
from promdemo_app.lifecycle import Lifecycle
from promdemo_app.probes import ProbeProcess
from promdemo_app.reset import describe_reset_policy
from promdemo_app.settings import Settings
from promdemo_app.web import create_app

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("promdemo_app.server")

BACKLOG = 2048
# Above the floods measured (2,100 idle connections): past the limit gunicorn stops
# accepting, and a new client then waits until idle ones time out (60 s); below it, a
# new connection is accepted and waits only for a thread (bench_app_probes.py).
MIN_CONNECTION_LIMIT = 4096
# Request line, and each header line, at most this long (gunicorn: 414 / 431).
MAX_REQUEST_LINE = 8190
MAX_HEADER_FIELD = 8190
MAX_HEADER_FIELDS = 100
# An idle keep-alive connection (and one that connected and sent nothing) is
# closed after this long.
KEEPALIVE_SECONDS = 60
# A connection's socket gives up on a read that gets no byte for this long
# (the client stalled sending its request) and on a write that cannot send
# for this long (the client stopped reading): set on the listening socket,
# whose accepted sockets inherit them (Linux), so every blocking read and
# write of gunicorn's threads is bounded.
RECEIVE_TIMEOUT_SECONDS = 20
SEND_TIMEOUT_SECONDS = 60
# The arbiter restarts a worker whose main loop stops for this long (the
# loop only accepts and polls: slow orders run on the threads).
WORKER_TIMEOUT_SECONDS = 60
# Threads beyond PROMDEMO_THREADS: with that many slow orders in flight, a
# scrape of /metrics or a reset still finds a thread (the probes have a port
# and a thread of their own, probes.py).
SPARE_THREADS = 8
# gunicorn creates and unlinks its heartbeat file there at once (not a shared path).
HEARTBEAT_DIR = "/dev/shm"  # noqa: S108
# What the worker tells the parent at exit (worker_exit): every request answered or not.
DRAINED, NOT_DRAINED = b"0", b"1"


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
    """Connections the worker holds: max(4096, 2 x threads), within the open-files limit."""
    wanted = max(MIN_CONNECTION_LIMIT, 2 * threads)
    # Each connection is a file descriptor; keep room for the rest of the process.
    fd_limit = _ensure_fd_limit(wanted + 512)
    limit = max(100, min(wanted, fd_limit - 512))
    if limit < wanted:
        log.warning("open-files limit %d caps connections at %d", fd_limit, limit)
    return limit


def bind(host: str, port: int, *, timeouts: bool = False) -> socket.socket:
    """A listening TCP socket on host:port (`timeouts`: the read and write bounds above).

    Raises OSError (the port is taken, the address is not on this machine)
    or socket.gaierror (the name does not resolve).
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_ADDRCONFIG
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if timeouts:
            for option, seconds in (
                (socket.SO_RCVTIMEO, RECEIVE_TIMEOUT_SECONDS),
                (socket.SO_SNDTIMEO, SEND_TIMEOUT_SECONDS),
            ):
                sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", seconds, 0))
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def shown(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class QuietTimeouts(logging.Filter):
    """gunicorn logs a socket timeout with a traceback; it is a client that stalled: one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (BlockingIOError, TimeoutError)):
            record.msg = (
                "closed a connection whose client stalled: nothing received for %ds "
                "or nothing sent for %ds"
            )
            record.args = (RECEIVE_TIMEOUT_SECONDS, SEND_TIMEOUT_SECONDS)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@dataclass
class Worker:
    """What the gunicorn worker process holds besides the app (set in post_worker_init)."""

    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    probes: ProbeProcess | None = None
    drain: DrainWatcher | None = None


class OrderService(BaseApplication):  # type: ignore[misc]
    """The order service as a gunicorn application (gunicorn's "custom application" API)."""

    def __init__(
        self,
        settings: Settings,
        listener_fd: int,
        probe_listener: socket.socket | None,
        status_fd: int,
    ) -> None:
        self.settings = settings
        # gunicorn owns this descriptor from now on (it closes it when it stops).
        self.listener_fd = listener_fd
        self.probe_listener = probe_listener
        self.status_fd = status_fd
        self.worker = Worker()
        self.connections = connection_limit(settings.threads)
        super().__init__(prog="promdemo-app")

    # gunicorn's API -------------------------------------------------------------

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [f"fd://{self.listener_fd}"],
            "backlog": BACKLOG,
            "worker_class": "gthread",
            "workers": 1,
            "threads": s.threads + SPARE_THREADS,
            "worker_connections": self.connections,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": WORKER_TIMEOUT_SECONDS,
            # gunicorn counts whole seconds.
            "graceful_timeout": math.ceil(s.shutdown_timeout_seconds),
            "limit_request_line": MAX_REQUEST_LINE,
            "limit_request_fields": MAX_HEADER_FIELDS,
            "limit_request_field_size": MAX_HEADER_FIELD,
            "loglevel": s.log_level,
            "errorlog": "-",
            "accesslog": None,
            # One control socket per user's home would be shared by every replica.
            "control_socket_disable": True,
            "proc_name": "promdemo-app",
            # The worker's heartbeat file (created and unlinked at once): in
            # memory, so a read-only root filesystem without a writable /tmp works.
            "worker_tmp_dir": HEARTBEAT_DIR if os.access(HEARTBEAT_DIR, os.W_OK) else None,
            "post_worker_init": self._post_worker_init,
            "worker_int": self._worker_int,
            "worker_exit": self._worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Called in the worker after the fork: the inventory is the worker's.
        return create_app(self.settings, lifecycle=self.worker.lifecycle)

    # hooks (each runs in the worker process) -------------------------------------

    def _post_worker_init(self, worker: Any) -> None:
        state = self.worker
        logging.getLogger("gunicorn.error").addFilter(QuietTimeouts())
        state.drain = DrainWatcher(state.lifecycle, self.settings.shutdown_timeout_seconds)
        if self.probe_listener is not None:
            # Forked before this process starts any thread of its own.
            state.probes = ProbeProcess(self.probe_listener)
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            # A flag and one write here (a signal handler); the watcher thread does the rest.
            state.lifecycle.start_draining()
            if state.probes is not None:
                state.probes.set_draining()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
        state.drain.start()

    def _worker_int(self, worker: Any) -> None:
        self.worker.lifecycle.start_draining()
        if self.worker.probes is not None:
            self.worker.probes.set_draining()

    def _worker_exit(self, server: Any, worker: Any) -> None:
        lifecycle = self.worker.lifecycle
        in_flight = lifecycle.in_flight
        if in_flight:
            log.warning("exiting with %d request(s) still in flight", in_flight)
        # A pipe the parent reads when it exits: the exit code says whether orders were lost.
        os.write(self.status_fd, NOT_DRAINED if in_flight else DRAINED)


def serve(settings: Settings) -> int:
    """Bind, then run gunicorn until SIGTERM; returns the process's exit code.

    Raises OSError / socket.gaierror when an address cannot be listened on.
    """
    listener = bind(settings.host, settings.port, timeouts=True)
    probe_listener = None
    if settings.probe_port is not None:
        try:
            probe_listener = bind(settings.host, settings.probe_port)
        except OSError:
            listener.close()
            raise
    # The worker inherits the probe socket through the fork; gunicorn never sees it.
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    where = shown(listener)
    service = OrderService(settings, listener.detach(), probe_listener, write_fd)
    log.info(
        "listening on http://%s (gunicorn gthread, 1 worker, %d threads, up to %d connections)",
        where,
        settings.threads,
        service.connections,
    )
    if probe_listener is not None:
        log.info("probes (/healthz, /readyz) on http://%s", shown(probe_listener))
    log.info("%s", describe_reset_policy(settings))
    sys.stdout.flush()
    code = 0
    parent = os.getpid()
    try:
        service.run()
    except SystemExit as e:
        if os.getpid() != parent:
            raise  # the worker process ending: gunicorn's exit, not ours
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if code == 0:
        try:
            reports = os.read(read_fd, 4096)
        except BlockingIOError:
            reports = b""
        # The last worker's word; none: it was killed at the shutdown timeout.
        code = 0 if reports[-1:] == DRAINED else 1
    os.close(read_fd)
    os.close(write_fd)
    return code
