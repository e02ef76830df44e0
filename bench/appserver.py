"""The order service as a process, for the app benchmarks (bench_app*.py).

`AppServer` starts `python -m promdemo_app` on a free loopback port with the
benchmarks' settings (no simulated sleeps, atomic selling from the largest
stock, so every order is a real sale) and reads the CPU time and memory of the
process that serves (gunicorn's worker, not its master) from /proc.
`order_client` is a keep-alive client that sends raw HTTP/1.1 orders.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class AppServer:
    """One server process; `stop()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        full_env = {
            **os.environ,
            "PROMDEMO_SIMULATION": "off",
            "PROMDEMO_OVERSELL": "false",
            "PROMDEMO_INITIAL_INVENTORY": "1000000",
            "PROMDEMO_LOG_LEVEL": "warning",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promdemo_app", "--host", HOST, "--port", str(self.port)],
            env=full_env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("server did not answer /healthz")

    @property
    def pid(self) -> int:
        """The process that serves the requests, whose CPU and memory the benchmarks read:
        gunicorn's worker (the master's one child; `python -m promdemo_app` is the
        master, which only supervises), or the started process while it has no child."""
        master = self.proc.pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except FileNotFoundError:
            children = []
        return int(children[0]) if children else master

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            # The fields after the command name, which is in parentheses.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds so far of the event loop's thread (the main one) and of all others."""
        tick = os.sysconf("SC_CLK_TCK")
        main = others = 0.0
        pid = self.pid
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue  # a thread that just exited
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if int(tid) == pid:
                main += seconds
            else:
                others += seconds
        return main, others

    def rss_mib(self) -> float:
        return self._status("VmRSS") / 1024

    def threads(self) -> int:
        return self._status("Threads")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> AppServer:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fixed_body(_: random.Random) -> bytes:
    return b'{"order_id": 1}'


async def order_client(
    port: int,
    *,
    until: float | None = None,
    count: int | None = None,
    body: Callable[[random.Random], bytes] = fixed_body,
    seed: int = 0,
) -> dict[int, int]:
    """Orders back to back on one keep-alive connection, until a time or a count.

    Returns the answers by status; a connection error ends the client early
    and counts as status 0.
    """
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    reader, writer = await asyncio.open_connection(HOST, port)
    sent = 0
    try:
        while (until is None or time.monotonic() < until) and (count is None or sent < count):
            payload = body(rng)
            writer.write(
                b"POST /order HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            sent += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        statuses[0] = statuses.get(0, 0) + 1
    finally:
        writer.close()
    return statuses


def merge(into: dict[int, int], more: dict[int, int]) -> None:
    for status, n in more.items():
        into[status] = into.get(status, 0) + n
