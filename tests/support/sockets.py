"""Raw sockets for the flood tests: room for thousands of them, and telling which ones
the server closed."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def many_open_files(wanted: int = 16384) -> Iterator[None]:
    """The open-files soft limit raised towards `wanted` (within the hard limit), then back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def closed_by_server(sock: socket.socket) -> bool:
    """Did the other end close this connection (EOF or reset), without waiting?"""
    poller = select.poll()  # select() cannot take descriptors past 1,023
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
