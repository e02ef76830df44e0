"""The end of the drain: connections whose clients do not read their answers.

gunicorn's worker stops accepting at SIGTERM and waits for its connections to
finish, up to the shutdown timeout. A client that never reads its answer
holds its connection (and the thread writing to it) for that whole time,
though the request was answered long ago. Once the app has answered every
request in flight, this watcher gives the answers still being written a
short grace, then shuts those sockets down: the write fails, gunicorn closes
the connection, and the worker exits as soon as the last order is answered.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from promdemo_app.lifecycle import Lifecycle

log = logging.getLogger("promdemo_app.drain")

POLL_SECONDS = 0.1
# How long answers may still be written once the app has answered everything.
SEND_GRACE_SECONDS = 1.0
# While draining, a request body that stops arriving for this long is given up on.
RECEIVE_SILENCE_SECONDS = 1.0


class DrainWatcher:
    """A daemon thread that waits for the drain, then ends stalled writes."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        shutdown_timeout: float,
        send_grace: float = SEND_GRACE_SECONDS,
    ) -> None:
        self.lifecycle = lifecycle
        self.shutdown_timeout = shutdown_timeout
        self.send_grace = send_grace
        self._thread = threading.Thread(target=self._run, name="drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        lifecycle = self.lifecycle
        while not lifecycle.draining:
            time.sleep(POLL_SECONDS)
        started = time.monotonic()
        log.info(
            "draining: not ready, no new connections, %d request(s) in flight",
            lifecycle.in_flight,
        )
        warned = False
        while lifecycle.in_flight:
            time.sleep(POLL_SECONDS)
            # Bodies that stopped arriving: the app is waiting for them in a read.
            _shut(lifecycle.stalled_reads(RECEIVE_SILENCE_SECONDS), "sending its request body")
            # gunicorn stops the worker at the timeout, too abruptly to say why; say it here.
            waited = time.monotonic() - started
            if not warned and waited >= max(0.0, self.shutdown_timeout - 0.5):
                warned = True
                log.warning(
                    "shutdown timeout (%gs): %d request(s) still in flight will be cut off",
                    self.shutdown_timeout,
                    lifecycle.in_flight,
                )
        log.info("every request answered %.2fs into the drain", time.monotonic() - started)
        # Keep watching: a kept-alive connection may still bring one last request.
        while True:
            time.sleep(self.send_grace)
            _shut(lifecycle.stalled_writes(self.send_grace), "reading its answer")
            _shut(lifecycle.stalled_reads(RECEIVE_SILENCE_SECONDS), "sending its request body")


def _shut(sockets: list[socket.socket], stalled: str) -> None:
    """Shut `sockets` down: the thread blocked on each gets an error and closes it."""
    for sock in sockets:
        # OSError: its thread closed it meanwhile.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    if sockets:
        log.info("closed %d connection(s) whose client stalled %s", len(sockets), stalled)
