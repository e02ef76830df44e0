"""Does the server's memory stay flat under orders with bodies of varying size?

    python bench/bench_app_memory.py [--warmup 20000] [--requests 100000] [--json]

Starts the real server (`python -m promdemo_app`, default 300 threads, no
simulated sleeps) and sends POST /order from `--concurrency` keep-alive clients,
each body a JSON order padded to a random size from 0 to `--max-body` bytes.
After `--warmup` requests it reads the server's RSS (/proc), then sends
`--requests` more in ten steps, printing RSS and thread count after each; the
figure is the growth after warm-up (target: under 10 MB over 100,000).

Why bodies of varying size: a body is received on the event loop's thread and
was freed on a worker thread, where glibc keeps it in that thread's cache
(tcache, up to 7 blocks per size class); with 300 threads taking turns, every
size class of every thread filled up and the heap grew to replace them
(37.9 -> 73.9 MB over 100,000 such requests, still rising; docs/app.md).
A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

from appserver import AppServer, merge, order_client


def make_body(max_size: int):  # type: ignore[no-untyped-def]
    def body(rng: random.Random) -> bytes:
        size = rng.randint(0, max_size)
        if size < 32:
            return b" " * size  # an order without details
        return b'{"order_id": 1, "note": "' + b"x" * (size - 27) + b'"}'

    return body


async def send(port: int, total: int, concurrency: int, max_body: int, seed: int) -> dict:
    per_client = total // concurrency
    results = await asyncio.gather(
        *(
            order_client(port, count=per_client, body=make_body(max_body), seed=seed + i)
            for i in range(concurrency)
        )
    )
    statuses: dict[int, int] = {}
    for result in results:
        merge(statuses, result)
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=20_000, help="requests before (20000)")
    parser.add_argument("--requests", type=int, default=100_000, help="requests measured")
    parser.add_argument("--concurrency", type=int, default=50, help="clients (default 50)")
    parser.add_argument("--max-body", type=int, default=2048, help="largest body (2048)")
    parser.add_argument("--threads", type=int, default=300, help="PROMDEMO_THREADS (300)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    statuses: dict[int, int] = {}
    with AppServer(PROMDEMO_THREADS=str(args.threads)) as app:
        started_rss = app.rss_mib()
        warmup = send(app.port, args.warmup, args.concurrency, args.max_body, 0)
        merge(statuses, asyncio.run(warmup))
        warm_rss = app.rss_mib()
        print(
            f"POST /order with bodies of 0-{args.max_body} bytes, {args.concurrency} keep-alive "
            f"clients, {args.threads} threads"
        )
        print(f"  at start-up       : RSS {started_rss:6.1f} MiB")
        print(f"  after {args.warmup:>7} warm-up: RSS {warm_rss:6.1f} MiB, {app.threads()} threads")
        steps = 10
        rss = []
        for step in range(1, steps + 1):
            merge(
                statuses,
                asyncio.run(
                    send(app.port, args.requests // steps, args.concurrency, args.max_body, step)
                ),
            )
            rss.append(app.rss_mib())
            print(
                f"  +{step * args.requests // steps:>7} requests : RSS {rss[-1]:6.1f} MiB, "
                f"{app.threads()} threads"
            )
    growth = rss[-1] - warm_rss
    other = {s: n for s, n in statuses.items() if s != 200}
    print(
        f"  growth after warm-up: {growth:+.1f} MiB over {args.requests} requests "
        f"(peak {max(rss):.1f} MiB)" + (f"; other answers: {other}" if other else "")
    )
    if args.json:
        figures = {
            "requests": args.requests,
            "warmup": args.warmup,
            "max_body_bytes": args.max_body,
            "rss_start_mib": round(started_rss, 1),
            "rss_after_warmup_mib": round(warm_rss, 1),
            "rss_end_mib": round(rss[-1], 1),
            "rss_peak_mib": round(max(rss), 1),
            "rss_growth_mib": round(growth, 1),
            "non_200": sum(other.values()),
        }
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
