"""What the metrics cost: orders/s with PROMDEMO_METRICS=on vs off, side by side.

    python bench/bench_app.py [--seconds 20] [--concurrency 50] [--rounds 4]

Starts the real server (`python -m promdemo_app`, waitress, one process) twice
on free loopback ports, both with PROMDEMO_SIMULATION=off (no sleeps, no
failures: the service itself is measured) and oversell off with the largest
stock allowed (1,000,000), so every order is a real sale (200), not a cheap 409.
The client keeps `--concurrency` keep-alive connections busy with POST /order.
The time is split into rounds that alternate between the two servers, so a
neighbour's load on a shared machine hits both alike. Prints orders/s for each
and the overhead ratio. A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REQUEST = (
    b"POST /order HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\n\r\n{"order_id": 1}'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class App:
    """One server process; stopped (SIGTERM, then SIGKILL) by `stop()`."""

    def __init__(self, metrics: str, threads: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PROMDEMO_SIMULATION": "off",
            "PROMDEMO_OVERSELL": "false",
            "PROMDEMO_INITIAL_INVENTORY": "1000000",
            "PROMDEMO_METRICS": metrics,
            "PROMDEMO_THREADS": str(threads),
            "PROMDEMO_LOG_LEVEL": "warning",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promdemo_app", "--host", HOST, "--port", str(self.port)],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("server did not answer /healthz")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)


async def client(port: int, until: float, tally: Tally) -> None:
    """One keep-alive connection sending orders back to back until `until`."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.monotonic() < until:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        tally.errors += 1
    finally:
        writer.close()


async def drive(port: int, seconds: float, concurrency: int) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(client(port, until, tally) for _ in range(concurrency)))
    return tally, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per server (default 20)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients (default 50)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations (default 4)")
    parser.add_argument("--threads", type=int, default=300, help="PROMDEMO_THREADS (300)")
    args = parser.parse_args(argv)

    apps = {"on": App("on", args.threads), "off": App("off", args.threads)}
    try:
        for app in apps.values():
            app.wait_ready()
        # Warm-up: first requests pay for imports and thread start-up.
        for app in apps.values():
            asyncio.run(drive(app.port, 1.0, args.concurrency))
        totals = {name: [0, 0.0, Tally()] for name in apps}
        per_round = args.seconds / args.rounds
        for round_no in range(args.rounds):
            # Alternate which one goes first, so neither always follows the other.
            order = ["on", "off"] if round_no % 2 == 0 else ["off", "on"]
            for name in order:
                tally, elapsed = asyncio.run(drive(apps[name].port, per_round, args.concurrency))
                totals[name][0] += tally.ok
                totals[name][1] += elapsed
                total_tally = totals[name][2]
                for status, n in tally.statuses.items():
                    total_tally.statuses[status] = total_tally.statuses.get(status, 0) + n
                total_tally.errors += tally.errors
    finally:
        for app in apps.values():
            app.stop()

    rate = {name: ok / elapsed for name, (ok, elapsed, _) in totals.items()}
    print(
        f"POST /order, PROMDEMO_SIMULATION=off, {args.concurrency} keep-alive clients, "
        f"{args.seconds:g}s per server in {args.rounds} alternating rounds, "
        f"{args.threads} threads, {os.cpu_count()} CPUs"
    )
    for name in ("on", "off"):
        ok, elapsed, tally = totals[name]
        other = {s: n for s, n in tally.statuses.items() if s != 200}
        extra = (
            f" (non-200: {other}, connection errors: {tally.errors})"
            if other or tally.errors
            else ""
        )
        print(
            f"  metrics {name:3}: {rate[name]:8.1f} orders/s "
            f" ({ok} orders in {elapsed:.1f}s){extra}"
        )
    overhead = 1 - rate["on"] / rate["off"]
    print(
        f"  ratio on/off: {rate['on'] / rate['off']:.3f}  -> instrumentation costs {overhead:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
