"""`promdemo local --lessons`: the run docs/lessons.md's numbers come from.

Two loops, next to the monitor and the (paused) heal loop of `loops.py`:

- `lessons_loop`: waits until Prometheus has scraped the replica (its counters
  at 0), lets `lessons.SETUP.quiet_seconds` pass (from the zero `rate()` counts
  the whole burst, and NoSuccessOrders goes pending meanwhile), sends the one
  burst through `load.run_load` (300 orders, 300 at once, as `promdemo load`
  does), waits until Prometheus has scraped its outcome, and says what to read
  and until when;
- `command_loop`: reads lines from stdin; `heal` turns the heal loop on (lesson 13).

Times are printed in local time and in UTC: the Prometheus UI shows UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO

import httpx

from promdemo_operator.cli.lessons import SETUP
from promdemo_operator.cli.load import run_load
from promdemo_operator.cli.local.loops import LOAD_TIMEOUT_SECONDS, round_line
from promdemo_operator.cli.local.monitoring import JOB
from promdemo_operator.cli.local.session import DemoState
from promdemo_operator.cli.local.ui import Output
from promdemo_operator.core.duration import format_seconds as _s

#: Prometheus must have scraped the burst's outcome within this long.
SCRAPE_WAIT_SECONDS = 60.0
HEAL_COMMAND = "heal"


def clock(epoch: float) -> str:
    """`14:03:07 (06:03:07 UTC)`: local time, and the UTC the Prometheus UI shows."""
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(epoch))} "
        f"({time.strftime('%H:%M:%S', time.gmtime(epoch))} UTC)"
    )


async def _query(client: httpx.AsyncClient, prometheus_url: str, expr: str) -> float | None:
    """The single value of an instant query, None when empty or unreachable."""
    try:
        body = (await client.get(f"{prometheus_url}/api/v1/query", params={"query": expr})).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return None


async def _until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, period: float = 0.25
) -> bool:
    """Poll `check` until it returns True; False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(period)
    return False


async def lessons_loop(state: DemoState, out: Output, *, stopping: asyncio.Event) -> None:
    """Wait for the zero scrapes, send the one burst, tell the learner what to read."""
    prometheus = state.prometheus_url
    if prometheus is None:  # refused by the command line; nothing to teach without it
        return
    replica = state.replicas[0]
    scrape = state.config.scrape_interval_seconds
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:

        async def scraped() -> bool:
            return await _query(client, prometheus, f'up{{job="{JOB}"}} == 1') == 1

        if not await _until(scraped, timeout=SCRAPE_WAIT_SECONDS):
            out.warn("lessons: Prometheus has not scraped the replica; see its targets page")
            return
        out.event(
            f"lessons: Prometheus scraped {replica.name} (its counters at 0); the burst of "
            f"{SETUP.burst_orders} orders goes out in {_s(SETUP.quiet_seconds)}"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=SETUP.quiet_seconds)
        if stopping.is_set():
            return

        started = time.time()
        state.load_round = 1
        out.event(
            f"lessons: burst at {clock(started)}: {SETUP.burst_orders} orders, "
            f"{SETUP.burst_concurrency} at once, to {replica.name} (as `promdemo load` sends them)"
        )
        summary = await run_load(
            replica.url,
            orders=SETUP.burst_orders,
            concurrency=SETUP.burst_concurrency,
            check=False,
            timeout_seconds=LOAD_TIMEOUT_SECONDS,
        )
        sold = summary.statuses.get(200, 0)
        out.event(
            f"lessons: {round_line(1, [summary]).removeprefix('load round 1 ')}; "
            f"inventory {SETUP.initial_inventory} - {sold} = {SETUP.initial_inventory - sold}"
        )

        async def has_burst() -> bool:
            total = await _query(client, prometheus, f'sum(orders_total{{job="{JOB}"}})')
            return total is not None and total >= summary.answered

        if not await _until(has_burst, timeout=SCRAPE_WAIT_SECONDS):
            out.warn("lessons: Prometheus has not scraped the burst's outcome yet")
            return
        # one more evaluation, so that the rules (and ALERTS) have seen it too
        await asyncio.sleep(2 * scrape)
    seen = time.time()
    out.event(
        f"lessons: Prometheus has the burst at {clock(seen)}. Open the links above; "
        "docs/lessons.md says what each shows."
    )
    out.event(
        f"lessons: the burst stays in lesson 8's [1m] window until about {clock(started + 60)}, "
        f"in the [5m] windows until {clock(started + 300)}, in the [30m] ones until "
        f"{clock(started + 1800)}"
    )
    if state.config.heal:
        out.event(f"lessons: heal is paused: type {HEAL_COMMAND} and press Enter (lesson 13)")


async def command_loop(
    state: DemoState,
    out: Output,
    *,
    heal_enabled: asyncio.Event,
    stream: IO[str] | None = None,
) -> None:
    """Commands typed into `promdemo local` (stdin): `heal` turns the heal loop on.

    Lines are read by a daemon thread, so that a blocked read never holds up the
    exit and stdin stays in blocking mode (the terminal's stdout shares it).
    Ends at end of input (stdin closed or /dev/null): the demo goes on.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    source = stream if stream is not None else sys.stdin

    def read() -> None:
        try:
            for line in source:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop is closed: the demo has ended
            loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="promdemo-local-stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        command = line.strip().lower()
        if not command:
            continue
        if command == HEAL_COMMAND and state.config.heal:
            if heal_enabled.is_set():
                out.event("heal: already on")
            heal_enabled.set()
        elif command == HEAL_COMMAND:
            out.event("heal: off for this run (--no-heal)")
        else:
            out.event(f"commands: {HEAL_COMMAND} (turn healing on); Ctrl-C stops everything")
