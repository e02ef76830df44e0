"""The load generator: the Flask practice demo's curl loop (docs/lessons.md) as a library.

The demo drove the order service with

    for i in {1..300}; do curl -s -X POST http://HOST:PORT/order & done

`run_load(...) -> LoadSummary` sends the same burst with async httpx: `orders`
POSTs to `/order`, at most `concurrency` in flight (`concurrency` workers, each
with its own single-connection client: at most `concurrency` connections), each
with a JSON body like the demo's (`order_id`, `user_id`, `amount`), repeated for
`rounds` rounds with `pause_seconds` in between. `LoadSummary` counts the answers
per status code and error and gives the latency percentiles (nearest rank).

It knows nothing of terminals: `cli/commands/load.py` (`promdemo load`) adds the
progress bar and the printing; `promdemo local --with-load` calls it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

DEFAULT_ORDERS = 300
DEFAULT_CONCURRENCY = 300
DEFAULT_TIMEOUT_SECONDS = 30.0
HEALTH_TIMEOUT_SECONDS = 5.0


class LoadError(Exception):
    """The load cannot start (bad URL, unreachable target); the message is one line."""


@dataclass(frozen=True)
class OrderResult:
    """One POST /order: its HTTP status, or the transport error that replaced it."""

    latency_seconds: float
    status: int | None = None
    error: str | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0 < q ≤ 100) by nearest rank; None for no values.

    Nearest rank: the smallest value such that at least q% of the values are
    less than or equal to it. It is always one of the observed values.
    """
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not sorted_values:
        return None
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass(frozen=True)
class LoadSummary:
    """What a load run did: counts per status code and error, throughput, latency.

    `elapsed_seconds` is the time spent sending (pauses between rounds excluded);
    throughput counts every finished attempt, answered or not. The latency
    percentiles cover the requests that got an HTTP answer.
    """

    url: str
    orders: int
    concurrency: int
    rounds: int
    statuses: dict[int, int]
    errors: dict[str, int]
    elapsed_seconds: float
    latencies: tuple[float, ...] = field(repr=False)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed_transport(self) -> int:
        return sum(self.errors.values())

    @property
    def attempted(self) -> int:
        return self.answered + self.failed_transport

    @property
    def succeeded(self) -> int:
        """Orders the app accepted (HTTP 200)."""
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        """Finished attempts per second of sending."""
        if self.elapsed_seconds <= 0:
            return 0.0
        return self.attempted / self.elapsed_seconds

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies, q)

    @property
    def latency_max(self) -> float | None:
        return self.latencies[-1] if self.latencies else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (status codes as string keys, latencies in seconds)."""

        def rounded(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        return {
            "url": self.url,
            "orders": self.orders,
            "concurrency": self.concurrency,
            "rounds": self.rounds,
            "attempted": self.attempted,
            "answered": self.answered,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(sorted(self.errors.items())),
            "elapsed_seconds": round(self.elapsed_seconds, 6),
            "throughput_per_second": round(self.throughput, 3),
            "latency_seconds": {
                "p50": rounded(self.latency(50)),
                "p95": rounded(self.latency(95)),
                "p99": rounded(self.latency(99)),
                "max": rounded(self.latency_max),
            },
        }


def summarize(
    results: Iterable[OrderResult],
    *,
    url: str,
    concurrency: int,
    rounds: int,
    elapsed_seconds: float,
) -> LoadSummary:
    """Fold per-request results into a LoadSummary."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    count = 0
    for r in results:
        count += 1
        if r.status is not None:
            statuses[r.status] += 1
            latencies.append(r.latency_seconds)
        else:
            errors[r.error or "error"] += 1
    latencies.sort()
    return LoadSummary(
        url=url,
        orders=count,
        concurrency=concurrency,
        rounds=rounds,
        statuses=dict(statuses),
        errors=dict(errors),
        elapsed_seconds=elapsed_seconds,
        latencies=tuple(latencies),
    )


def split_url(url: str) -> tuple[str, str]:
    """(base URL, order URL) from what the user typed.

    Accepts the app's base URL (`http://127.0.0.1:8080`) or the demo's order
    URL (`http://127.0.0.1:8080/order`); a path prefix (a proxy) is kept.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LoadError(f"not an http(s) URL: {url!r} (example: http://127.0.0.1:8080)")
    path = parts.path.rstrip("/")
    if path.endswith("/order"):
        path = path[: -len("/order")]
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return base, f"{base}/order"


def order_body(order_id: int, rng: random.Random) -> dict[str, Any]:
    """A JSON body like the Flask practice demo's order."""
    return {
        "order_id": order_id,
        "user_id": rng.randint(1, 1000),
        "amount": round(rng.uniform(1, 500), 2),
    }


async def check_reachable(
    client: httpx.AsyncClient, base_url: str, timeout_seconds: float = HEALTH_TIMEOUT_SECONDS
) -> None:
    """GET /healthz once; raise LoadError (one line) unless it answers 200."""
    url = f"{base_url}/healthz"
    try:
        response = await client.get(url, timeout=timeout_seconds)
    except httpx.TimeoutException:
        msg = f"target {base_url} did not answer GET /healthz within {timeout_seconds:g}s"
        raise LoadError(msg) from None
    except httpx.TransportError as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise LoadError(f"target {base_url} is unreachable: {reason}") from None
    if response.status_code != 200:
        raise LoadError(
            f"target {base_url} answered GET /healthz with HTTP {response.status_code}"
            " (is it a running promdemo order service?)"
        )


def _error_name(exc: BaseException) -> str:
    """A stable, short name for a transport error (ConnectError, ReadTimeout, ...)."""
    return type(exc).__name__


async def _send_round(
    clients: Sequence[httpx.AsyncClient],
    order_url: str,
    *,
    orders: int,
    first_order_id: int,
    rng: random.Random,
    on_result: Callable[[OrderResult], None] | None,
) -> list[OrderResult]:
    """`orders` POSTs by one worker per client; each worker sends one order at a time."""
    results: list[OrderResult] = []
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < orders:
            order_id = first_order_id + next_index
            next_index += 1
            body = order_body(order_id, rng)
            started = time.perf_counter()
            try:
                response = await client.post(order_url, json=body)
                result = OrderResult(time.perf_counter() - started, status=response.status_code)
            except httpx.TransportError as e:
                result = OrderResult(time.perf_counter() - started, error=_error_name(e))
            results.append(result)
            if on_result is not None:
                on_result(result)

    workers = [asyncio.create_task(worker(c)) for c in clients[: min(len(clients), orders)]]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
    return results


def make_client(
    timeout_seconds: float,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    connections: int = 1,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """An httpx client holding at most `connections` connections (one per worker by default).

    The load uses one single-connection client per worker rather than one client
    with a pool of `concurrency` connections: httpx's pool scans every connection
    on each request, which at 300 connections cost ~10 s of client CPU for 300
    orders here, against ~1.9 s end to end with one client per worker (as fast as
    300 background curls). Either way, at most `concurrency` connections are open.
    """
    return httpx.AsyncClient(
        transport=transport,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        # A worker never waits for its own pool, so only connect/read/write are timed.
        timeout=httpx.Timeout(timeout_seconds, pool=None),
        trust_env=False,
        verify=verify,
    )


async def run_load(
    url: str,
    *,
    orders: int = DEFAULT_ORDERS,
    concurrency: int = DEFAULT_CONCURRENCY,
    rounds: int = 1,
    pause_seconds: float = 0.0,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    check: bool = True,
    seed: int | None = None,
    on_result: Callable[[OrderResult], None] | None = None,
    on_round: Callable[[int, LoadSummary], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadSummary:
    """Send `rounds` × `orders` POST /order to `url`, at most `concurrency` at once.

    Raises LoadError when the URL is invalid or (with `check`) when GET /healthz
    does not answer 200. `on_result` is called after every request (progress),
    `on_round` after every round with that round's summary. `transport` replaces
    the network (tests).
    """
    if orders < 1 or concurrency < 1 or rounds < 1:
        raise LoadError("orders, concurrency and rounds must each be at least 1")
    if timeout_seconds <= 0:
        raise LoadError(f"timeout must be more than 0 seconds, got {timeout_seconds:g}")
    base, order_url = split_url(url)
    rng = random.Random(seed)
    all_results: list[OrderResult] = []
    elapsed = 0.0
    # One TLS context for every client (building one per client costs ~0.1 s each).
    verify = ssl.create_default_context() if order_url.startswith("https:") else False
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(make_client(timeout_seconds, transport, verify=verify))
            for _ in range(min(concurrency, orders))
        ]
        if check:
            await check_reachable(clients[0], base, min(timeout_seconds, HEALTH_TIMEOUT_SECONDS))
        for round_index in range(rounds):
            if round_index and pause_seconds > 0:
                await asyncio.sleep(pause_seconds)
            started = time.perf_counter()
            results = await _send_round(
                clients,
                order_url,
                orders=orders,
                first_order_id=round_index * orders + 1,
                rng=rng,
                on_result=on_result,
            )
            round_elapsed = time.perf_counter() - started
            elapsed += round_elapsed
            all_results.extend(results)
            if on_round is not None:
                on_round(
                    round_index + 1,
                    summarize(
                        results,
                        url=order_url,
                        concurrency=concurrency,
                        rounds=1,
                        elapsed_seconds=round_elapsed,
                    ),
                )
    return summarize(
        all_results, url=order_url, concurrency=concurrency, rounds=rounds, elapsed_seconds=elapsed
    )
