"""Child processes of `promdemo local`: started so that none can outlive the demo.

`Child` is one process (a replica, Prometheus, Alertmanager) with its log file;
`ProcessGroup` starts the demo's children and stops them all; `wait_ready`
polls a child's readiness URL. Every child runs in its own session (a terminal's Ctrl-C reaches only
`promdemo local`, which then stops the children in order), writes to a log file
in the demo's work directory, and on Linux carries a parent-death signal: if
`promdemo local` itself is killed (even with SIGKILL), the kernel sends the
child SIGTERM. `stop_all` sends SIGTERM to every child's process group, waits,
then SIGKILLs what is left, so that every port is free when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1
#: How long a child gets to answer its readiness URL (a cold Prometheus takes a few seconds).
START_TIMEOUT_SECONDS = 30.0


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Child:
    """One child process (an app replica, Prometheus, Alertmanager)."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the child's process group (the child and anything it started)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 5) -> str:
        """The last lines of the child's log (for a one-line error, the last one)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def last_line(self) -> str:
        tail = self.tail(1)
        return tail if tail else "(no output)"


def stop_all(
    children: Sequence[Child], *, timeout: float = 10.0, hurry_on_signal: bool = True
) -> None:
    """SIGTERM every child's group, wait up to `timeout` s in all, then SIGKILL the rest.

    With `hurry_on_signal`, a second SIGINT/SIGTERM while waiting skips the wait
    (only outside an event loop, which owns the signal handlers while it runs).
    Always reaps every child, so no zombie and no listening socket is left behind.
    """
    started = [c for c in children if c.proc is not None]
    for child in started:
        if child.alive():
            child.signal_group(signal.SIGTERM)

    hurry = False

    def _hurry(signum: int, frame: object) -> None:
        nonlocal hurry
        hurry = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM) if hurry_on_signal else ():
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, _hurry)
    try:
        deadline = time.monotonic() + timeout
        while not hurry and time.monotonic() < deadline:
            if not any(c.alive() for c in started):
                break
            time.sleep(0.05)
        for child in started:
            if child.alive():
                child.signal_group(signal.SIGKILL)
        for child in started:
            assert child.proc is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when `host:port` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class ProcessGroup:
    """The demo's children, each logging to `workdir/NAME.log`; `stop()` stops them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        """Start a child; it is in `children` (so stopped at the end) even if it fails at once."""
        child = Child(name, argv, self.workdir / f"{name}.log", env=env)
        self.children.append(child)
        child.start()
        return child

    def stop(self, timeout: float = 10.0) -> None:
        stop_all(self.children, timeout=timeout)


class StartError(RuntimeError):
    """A child exited or never became ready; the message is one line with its last log line."""

    def __init__(self, message: str, child: Child) -> None:
        super().__init__(message)
        self.child = child


class StopRequested(Exception):
    """The demo was asked to stop (Ctrl-C, SIGTERM) while a child was starting."""


async def wait_ready(
    child: Child,
    url: str,
    *,
    what: str,
    stopping: asyncio.Event,
    timeout_seconds: float = START_TIMEOUT_SECONDS,
    poll_seconds: float = 0.1,
) -> None:
    """Poll `url` until it answers 200.

    Raises StartError when the child exits first or `timeout_seconds` pass, and
    StopRequested as soon as `stopping` is set (a Ctrl-C during start-up).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while True:
            if stopping.is_set():
                raise StopRequested
            if not child.alive():
                raise StartError(
                    f"{what} exited during start-up (code {child.returncode}): {child.last_line()}",
                    child,
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if loop.time() > deadline:
                raise StartError(
                    f"{what} did not answer {url} within {timeout_seconds:g}s: {child.last_line()}",
                    child,
                )
            await asyncio.sleep(poll_seconds)
