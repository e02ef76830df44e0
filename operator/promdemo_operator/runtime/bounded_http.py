"""The operator's own HTTP ports, bounded: connections at once, and idle time.

The operator listens on three ports: `/metrics`, `/healthz` and the Alertmanager
webhook. Each is an aiohttp application served here, through aiohttp's public API
only, with two bounds a client cannot talk its way around:

- idle time: aiohttp's ``keepalive_timeout`` closes a connection that has sent no
  complete request within it, from its first byte on (a client that connects and
  says nothing, or drips a header, slowloris) and after each answer (keep-alive);
- connections at once: when a new connection would exceed `max_connections`, the
  oldest ones are closed to make room (`web.Server.connections`, oldest first;
  `force_close`). A flood of idle connections therefore never keeps a new one out:
  the kubelet's probe, a Prometheus scrape, Alertmanager's notification are
  accepted and answered, and the flood's oldest connection pays.

`serve` runs on the caller's event loop (the health and webhook servers run on
kopf's, so `/healthz` answers only while that loop does: a liveness probe of the
operator); `ThreadedServer` gives a server its own loop in a thread (`/metrics`,
which is up before kopf starts and after it stops, and the standby's `/healthz`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

#: Connections open at once per port; past it, the oldest are closed.
MAX_CONNECTIONS = 512
#: A connection that sends no complete request for this long is closed.
IDLE_SECONDS = 15.0
#: Connections the kernel queues before they are accepted.
BACKLOG = 512
#: At stop, how long requests in progress may still finish.
SHUTDOWN_SECONDS = 2.0


@dataclass(frozen=True)
class Limits:
    max_connections: int = MAX_CONNECTIONS
    idle_seconds: float = IDLE_SECONDS


class BoundedServer:
    """One aiohttp application on one host and port, with `Limits` (see the module)."""

    def __init__(self, app: web.Application, host: str, port: int, limits: Limits) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (raises OSError when the port is taken); `port` 0 picks a free one."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.idle_seconds,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        await runner.setup()
        factory = runner.server
        assert factory is not None
        cap = self.limits.max_connections

        def protocol() -> web.RequestHandler:
            # Called by asyncio for each accepted connection, before it is served.
            live = [h for h in factory.connections if h.transport is not None]
            for handler in live[: max(0, len(live) - cap + 1)]:
                handler.force_close()
            return factory()

        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                protocol, self.host, self.port, backlog=BACKLOG, reuse_address=True
            )
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    @property
    def connections(self) -> int:
        """Connections open now."""
        if self._runner is None or self._runner.server is None:
            return 0
        return len(self._runner.server.connections)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ThreadedServer:
    """A `BoundedServer` on an event loop of its own, in a daemon thread.

    The constructor returns once the port listens, or raises its OSError.
    """

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        host: str,
        port: int,
        *,
        limits: Limits | None = None,
        name: str = "http",
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._server: BoundedServer | None = None
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                # The application is made on its own loop (aiohttp binds it there).
                server = BoundedServer(make_app(), host, port, limits or Limits())
                self._loop.run_until_complete(server.start())
                self._server = server
            except BaseException as e:  # reported to the constructor's caller
                failure.append(e)
                started.set()
                self._loop.close()
                return
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(server.stop())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        assert self._server is not None
        self.port = self._server.port

    @property
    def connections(self) -> int:
        return self._server.connections if self._server is not None else 0

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close the connections, end the thread (idempotent)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
