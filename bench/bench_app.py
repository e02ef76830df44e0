"""What the metrics cost: orders/s and CPU per order with PROMDEMO_METRICS=on vs off.

    python bench/bench_app.py [--seconds 40] [--rounds 20] [--concurrency 50] [--control] [--json]

1. The real server (`python -m promdemo_app`: gunicorn's master and its one gthread
   worker, which serves; CPU is read from the worker, `appserver.AppServer.pid`) twice, on
   free loopback ports, both without simulated sleeps and selling atomically
   from 1,000,000 units, so every order is a real sale (200). `--concurrency`
   keep-alive clients send POST /order back to back. The time is split into
   rounds alternating between the two servers, so a neighbour's load on a
   shared machine hits both alike. The cost is the ratio of orders/s over the
   whole run, and the median (with the spread) of the ratios of each pair of
   rounds. Per server: orders/s, and its CPU time per order (from /proc, split
   into the worker's main thread, which accepts and polls, and its request
   threads), which a busy machine disturbs less because the client competes
   for the same cores.
2. The WSGI app alone, in this process, metrics on vs off: CPU microseconds per
   order, the least of `--app-repeats` interleaved repeats (the steadiest figure:
   no sockets, no threads, no client). That difference over the server's CPU
   per order (metrics off) is the cost estimated for the whole server.

`--control` runs both servers with metrics off: the "cost" it shows is the
noise floor of the machine at that moment. `--json` adds one JSON object as
the last line. A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

from appserver import AppServer, merge, order_client


@dataclass
class Round:
    orders: int
    seconds: float
    cpu: float
    loop_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.orders * 1e6


@dataclass
class Server:
    app: AppServer
    rounds: list[Round] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return sum(r.orders for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def cpu_us(self) -> float:
        return sum(r.cpu for r in self.rounds) / sum(r.orders for r in self.rounds) * 1e6

    @property
    def loop_cpu_us(self) -> float:
        return sum(r.loop_cpu for r in self.rounds) / sum(r.orders for r in self.rounds) * 1e6


async def drive(port: int, seconds: float, concurrency: int) -> tuple[dict[int, int], float]:
    started = time.monotonic()
    until = started + seconds
    results = await asyncio.gather(
        *(order_client(port, until=until, seed=i) for i in range(concurrency))
    )
    statuses: dict[int, int] = {}
    for result in results:
        merge(statuses, result)
    return statuses, time.monotonic() - started


def measure_servers(args: argparse.Namespace) -> dict[str, Server]:
    env = {"PROMDEMO_THREADS": str(args.threads)}
    # --control: both servers without metrics, so the "cost" is the noise floor.
    first = "off" if args.control else "on"
    servers = {
        "on": Server(AppServer(PROMDEMO_METRICS=first, **env)),
        "off": Server(AppServer(PROMDEMO_METRICS="off", **env)),
    }
    try:
        for server in servers.values():
            server.app.wait_ready()
            # Warm-up: the first requests pay for imports and thread start-up.
            asyncio.run(drive(server.app.port, 1.0, args.concurrency))
        per_round = args.seconds / args.rounds
        for round_no in range(args.rounds):
            # Alternate which one goes first, so neither always follows the other.
            for name in ("on", "off") if round_no % 2 == 0 else ("off", "on"):
                server = servers[name]
                loop_before, others_before = server.app.cpu_split()
                statuses, elapsed = asyncio.run(drive(server.app.port, per_round, args.concurrency))
                loop, others = server.app.cpu_split()
                cpu = loop + others - loop_before - others_before
                round_ = Round(statuses.get(200, 0), elapsed, cpu, loop - loop_before)
                server.rounds.append(round_)
                merge(server.statuses, statuses)
    finally:
        for server in servers.values():
            server.app.stop()
    return servers


def measure_app_alone(repeats: int, calls: int = 3000) -> dict[str, float]:
    """CPU microseconds per POST /order through the WSGI app, metrics on and off."""
    from prometheus_client import CollectorRegistry

    from promdemo_app.settings import Settings
    from promdemo_app.web import create_app

    body = b'{"order_id": 1}'
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/order",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        pass

    apps = {
        name: create_app(
            Settings(
                simulation=False, oversell=False, initial_inventory=1_000_000, metrics=name == "on"
            ),
            CollectorRegistry(),
        )
        for name in ("on", "off")
    }
    best = {name: float("inf") for name in apps}
    for repeat in range(repeats):
        for name in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
            app = apps[name]
            started = time.process_time()
            for _ in range(calls):
                answer = app({**base, "wsgi.input": io.BytesIO(body)}, start_response)
                b"".join(answer)
                answer.close()  # type: ignore[attr-defined]
            best[name] = min(best[name], (time.process_time() - started) / calls * 1e6)
    return best


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):+.1%}, {min(values):+.1%} to {max(values):+.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="per server (default 40)")
    parser.add_argument("--rounds", type=int, default=20, help="alternations (default 20)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients (default 50)")
    parser.add_argument("--threads", type=int, default=300, help="PROMDEMO_THREADS (300)")
    parser.add_argument("--app-repeats", type=int, default=15, help="in-process repeats (15)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="both servers with metrics off: the cost shown is this machine's noise",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    servers = measure_servers(args)
    alone = measure_app_alone(args.app_repeats)

    on, off = servers["on"], servers["off"]
    total_cost = 1 - on.rate / off.rate
    pairs = list(zip(on.rounds, off.rounds, strict=True))
    throughput_costs = [1 - a.rate / b.rate for a, b in pairs]
    cpu_costs = [a.cpu_us / b.cpu_us - 1 for a, b in pairs]
    app_cost = alone["on"] / alone["off"] - 1

    if args.control:
        print("CONTROL RUN: both servers have metrics off; any cost below is noise")
    print(
        f"POST /order, no simulated sleeps, {args.concurrency} keep-alive clients, "
        f"{args.seconds:g}s per server in {args.rounds} alternating rounds, "
        f"{args.threads} threads, {os.cpu_count()} CPUs"
    )
    for name, server in servers.items():
        other = {s: n for s, n in server.statuses.items() if s != 200}
        extra = f"  (other answers: {other})" if other else ""
        print(
            f"  metrics {name:3}: {server.rate:8.1f} orders/s  {server.cpu_us:6.1f} us CPU/order"
            f" (worker's main thread {server.loop_cpu_us:.1f}, request threads "
            f"{server.cpu_us - server.loop_cpu_us:.1f}){extra}"
        )
    print(f"  the metrics cost, throughput  : {total_cost:+.1%} over the whole run")
    print(f"                    per pair    : {spread(throughput_costs)} over {len(pairs)} pairs")
    print(f"  the metrics cost, CPU/order   : {spread(cpu_costs)}")
    print(
        f"  WSGI app alone, CPU/order     : on {alone['on']:.1f} us, off {alone['off']:.1f} us "
        f"-> {app_cost:+.1%} ({alone['on'] - alone['off']:+.1f} us)"
    )
    # The app-alone difference is what the metrics add to each order wherever it
    # runs; against the server's whole CPU per order it is the cost a quiet
    # machine would show.
    estimated = (alone["on"] - alone["off"]) / off.cpu_us
    print(
        f"  estimated at the server       : {alone['on'] - alone['off']:+.1f} us of "
        f"{off.cpu_us:.1f} us CPU/order -> {estimated:+.1%}"
    )
    if args.json:
        figures = {
            "control": args.control,
            "concurrency": args.concurrency,
            "seconds_per_server": args.seconds,
            "rounds": args.rounds,
            "orders_per_second_on": round(on.rate, 1),
            "orders_per_second_off": round(off.rate, 1),
            "throughput_cost_fraction": round(total_cost, 4),
            "throughput_cost_median_of_pairs": round(statistics.median(throughput_costs), 4),
            "throughput_cost_min": round(min(throughput_costs), 4),
            "throughput_cost_max": round(max(throughput_costs), 4),
            "cpu_us_per_order_on": round(on.cpu_us, 1),
            "cpu_us_per_order_off": round(off.cpu_us, 1),
            "cpu_cost_fraction": round(statistics.median(cpu_costs), 4),
            "cpu_cost_min": round(min(cpu_costs), 4),
            "cpu_cost_max": round(max(cpu_costs), 4),
            "app_cpu_us_per_order_on": round(alone["on"], 1),
            "app_cpu_us_per_order_off": round(alone["off"], 1),
            "app_cpu_cost_us": round(alone["on"] - alone["off"], 1),
            "estimated_cost_fraction": round(estimated, 4),
            "connection_errors": on.statuses.get(0, 0) + off.statuses.get(0, 0),
        }
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
