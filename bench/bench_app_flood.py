"""How fast /healthz answers while a connection flood holds the server.

    python bench/bench_app_flood.py [--connections 2100] [--probes 50] [--json]

Starts the real server (`python -m promdemo_app`, default settings: a limit of
2,000 connections), then, for each kind of flood, opens `--connections`
connections that stay open and sends `--probes` GET /healthz, each on a new
connection as kubelet does, one every 100 ms. Kinds: none (the anchor), idle
(connected, silent) and slowloris (a request line and half a header, then
silence). Prints the probes' latency (median, p95, max) and how many failed;
the target is every probe answered in under 1 s. A measurement, never a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import socket
import statistics
import time

from appserver import HOST, AppServer

FLOODS = {
    "none": None,
    "idle": b"",
    "slowloris": b"GET /inventory HTTP/1.1\r\nHost: flood\r\nX-Slow: ",
}


def probe(port: int, timeout: float) -> float | None:
    """Seconds until /healthz answered 200 on a new connection; None if it did not."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return time.monotonic() - started if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2100, help="flood size (2100)")
    parser.add_argument("--probes", type=int, default=50, help="probes per kind (50)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per probe (10 s)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.connections + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))

    figures: dict[str, dict[str, float | int]] = {}
    print(f"GET /healthz on a new connection, {args.probes} probes, 100 ms apart")
    with AppServer() as app:
        for kind, first_bytes in FLOODS.items():
            socks: list[socket.socket] = []
            try:
                if first_bytes is not None:
                    for _ in range(args.connections):
                        sock = socket.create_connection((HOST, app.port), timeout=30)
                        if first_bytes:
                            sock.sendall(first_bytes)
                        socks.append(sock)
                times = []
                for _ in range(args.probes):
                    times.append(probe(app.port, args.timeout))
                    time.sleep(0.1)
            finally:
                for sock in socks:
                    sock.close()
            answered = sorted(t for t in times if t is not None)
            failed = len(times) - len(answered)
            row = {
                "median_ms": round(statistics.median(answered) * 1000, 1) if answered else -1,
                "p95_ms": round(answered[int(0.95 * (len(answered) - 1))] * 1000, 1)
                if answered
                else -1,
                "max_ms": round(answered[-1] * 1000, 1) if answered else -1,
                "failed": failed,
            }
            figures[kind] = row
            label = "no flood" if first_bytes is None else f"{args.connections} {kind}"
            print(
                f"  {label:>15}: median {row['median_ms']:7.1f} ms, p95 {row['p95_ms']:7.1f} ms, "
                f"max {row['max_ms']:7.1f} ms, failed {failed}/{args.probes}"
            )
    if args.json:
        print(json.dumps({"connections": args.connections, "probes": args.probes, **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
