"""Kubelet's probes while the service port is under load: `/healthz` on the probe port.

    python bench/bench_app_probes.py --json
    python bench/bench_app_probes.py --rounds 3 --probes 60 --json

Starts the real server (`python -m promdemo_app --probe-port ...`), then, in
rounds that take the scenarios in turn, puts one load on the service port from
a child process and meanwhile times `GET /healthz` on a new connection each
time (as kubelet probes), alternately on the probe port and on the service
port (the second shows what the probe port saves). The scenarios:

  metrics-loop   200 keep-alive clients looping GET /metrics
  pipelined      100 connections, each sending 300 GET /metrics and never reading
  idle-slowloris 2,100 connections: half idle, half sending a header byte every 5 s
  idle           2,100 connections that send nothing (--scenario idle: not in the default set)
  slowloris      2,100 connections each sending a header byte every 5 s (likewise)
                 (--connections N: N instead of 2,100 in the three floods)
  slow-orders    600 concurrent POST /order with the simulated slow dependency

`idle` and `slowloris` take the mixed flood apart, to tell which half holds the
service port (gunicorn's threads); they run only when named with --scenario.

Target: p99 under 0.5 s on the probe port in every scenario (a probe that times
out after 2 s, the kubelet's timeout, counts as 2 s). Prints the figures per scenario (median, p95,
p99, max over all rounds, and the spread of the per-round p99); with --json,
one JSON object as its last line. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PROBE_TIMEOUT = 2.0  # the kubelet's timeoutSeconds in the rendered Deployment
SCENARIOS = ("metrics-loop", "pipelined", "idle-slowloris", "slow-orders")
EXTRA_SCENARIOS = ("idle", "slowloris")
FLOODS = {"idle-slowloris": 2, "idle": 0, "slowloris": 1}  # every n-th drips; 0: none
TARGET_P99 = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# --------------------------------------------------------------------- the loads


def _metrics_loop(port: int, stop: threading.Event, clients: int = 200) -> list[threading.Thread]:
    def loop() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while not stop.is_set():
            try:
                conn.request("GET", "/metrics")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                time.sleep(0.05)
        conn.close()

    return [threading.Thread(target=loop, daemon=True) for _ in range(clients)]


def _orders(port: int, stop: threading.Event, clients: int = 600) -> list[threading.Thread]:
    def loop() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            try:
                conn.request("POST", "/order", headers={"Connection": "close"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
            finally:
                conn.close()

    return [threading.Thread(target=loop, daemon=True) for _ in range(clients)]


def drips(kind: str, i: int) -> bool:
    """Is the i-th connection of flood `kind` a slowloris (the others stay silent)?"""
    every = FLOODS[kind]
    return bool(every) and i % every == every - 1


def run_load(kind: str, port: int, connections: int = 2100) -> None:
    """The child process: put `kind` of load on `port` until SIGTERM."""
    raise_fd_limit(4096)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    held: list[socket.socket] = []
    threads: list[threading.Thread] = []
    if kind == "metrics-loop":
        threads = _metrics_loop(port, stop)
    elif kind == "slow-orders":
        threads = _orders(port, stop)
    elif kind == "pipelined":
        for _ in range(100):
            sock = socket.create_connection((HOST, port), timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n" * 300)
            held.append(sock)
    elif kind in FLOODS:
        # Connecting stops being quick once the server's connection limit and
        # its accept queue are full (the kernel drops further SYNs): give each
        # connection 1 s and the flood 20 s, and report how many are open.
        deadline = time.monotonic() + 20
        for i in range(connections):
            if time.monotonic() > deadline:
                break
            try:
                sock = socket.create_connection((HOST, port), timeout=1)
                if drips(kind, i):
                    sock.sendall(b"GET /inventory HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            except OSError:
                continue
            held.append(sock)
    for t in threads:
        t.start()
    print(f"ready {len(held)} sockets, {len(threads)} clients", flush=True)
    last_trickle = time.monotonic()
    while not stop.is_set():
        stop.wait(0.5)
        if kind in FLOODS and time.monotonic() - last_trickle > 5:
            last_trickle = time.monotonic()
            for i, sock in enumerate(held):
                if drips(kind, i):
                    with contextlib.suppress(OSError):
                        sock.send(b"a")
    for sock in held:
        sock.close()


# -------------------------------------------------------------------- the probes


def probe(port: int) -> float:
    """Seconds to answer GET /healthz on a new connection (PROBE_TIMEOUT if it failed)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            return PROBE_TIMEOUT
    except (OSError, http.client.HTTPException):
        return PROBE_TIMEOUT
    finally:
        conn.close()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def start_server(port: int, probe_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PROMDEMO_INITIAL_INVENTORY": "1000000",
        "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0",
    }
    argv = [sys.executable, "-m", "promdemo_app", "--host", HOST]
    argv += ["--port", str(port), "--probe-port", str(probe_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if probe(probe_port) < PROBE_TIMEOUT and probe(port) < PROBE_TIMEOUT:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start; see {log}")


def one_round(
    kind: str, port: int, probe_port: int, probes: int, warmup: float, connections: int = 2100
) -> dict:
    argv = [sys.executable, __file__, "--load", kind, "--port", str(port)]
    load = subprocess.Popen(
        [*argv, "--connections", str(connections)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = load.stdout.readline().strip() if load.stdout else ""
        time.sleep(warmup)
        on_probe, on_service = [], []
        for _ in range(probes):
            on_probe.append(probe(probe_port))
            on_service.append(probe(port))
            time.sleep(0.1)
    finally:
        load.terminate()
        try:
            load.wait(timeout=30)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
    return {"load": ready, "probe_port": on_probe, "service_port": on_service}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "failed": sum(v >= PROBE_TIMEOUT for v in values),
        "n": len(values),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all scenarios")
    parser.add_argument("--probes", type=int, default=40, help="probes per port per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before probing")
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS + EXTRA_SCENARIOS, help="only these"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    parser.add_argument("--load", choices=SCENARIOS + EXTRA_SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--connections",
        type=int,
        default=2100,
        help="connections of the idle / slowloris floods (default 2100)",
    )
    args = parser.parse_args()
    if args.load:
        run_load(args.load, args.port, args.connections)
        return 0

    scenarios = args.scenario or list(SCENARIOS)
    port, probe_port = free_port(), free_port()
    log = Path(tempfile.gettempdir()) / f"bench_app_probes-{port}.log"
    server = start_server(port, probe_port, log)
    results: dict[str, dict[str, list]] = {
        s: {"probe_port": [], "service_port": [], "p99s": [], "load": []} for s in scenarios
    }
    try:
        for r in range(args.rounds):
            for kind in scenarios:
                got = one_round(kind, port, probe_port, args.probes, args.warmup, args.connections)
                bucket = results[kind]
                bucket["probe_port"] += got["probe_port"]
                bucket["service_port"] += got["service_port"]
                bucket["p99s"].append(percentile(got["probe_port"], 0.99))
                bucket["load"].append(got["load"])
                print(
                    f"round {r + 1} {kind:15s} ({got['load']}): probe port p99 "
                    f"{bucket['p99s'][-1] * 1000:7.1f} ms",
                    flush=True,
                )
                time.sleep(5)  # the server lets go of the last load's connections
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    print(
        f"\nGET /healthz on a new connection, {args.probes} probes per port per round, "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.1f}); a failed probe counts {PROBE_TIMEOUT:g} s"
    )
    report: dict[str, dict] = {}
    ok = True
    for kind in scenarios:
        bucket = results[kind]
        entry = {
            "probe_port": summary(bucket["probe_port"]),
            "service_port": summary(bucket["service_port"]),
            "probe_port_p99_per_round": bucket["p99s"],
        }
        report[kind] = entry
        for where in ("probe_port", "service_port"):
            s = entry[where]
            print(
                f"  {kind:15s} {where:12s}: median {s['median'] * 1000:7.1f} ms, p95 "
                f"{s['p95'] * 1000:7.1f} ms, p99 {s['p99'] * 1000:7.1f} ms, max "
                f"{s['max'] * 1000:7.1f} ms, failed {s['failed']}/{s['n']}"
            )
        spread = ", ".join(f"{p * 1000:.1f}" for p in bucket["p99s"])
        print(f"  {kind:15s} probe-port p99 per round: {spread} ms")
        ok = ok and entry["probe_port"]["p99"] < TARGET_P99
    print(f"target: probe-port p99 < {TARGET_P99} s in every scenario: {'met' if ok else 'MISSED'}")
    if args.json:
        print(json.dumps({"scenarios": report, "target_p99_seconds": TARGET_P99, "met": ok}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
