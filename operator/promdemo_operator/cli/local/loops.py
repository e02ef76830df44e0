"""The loops of a running `promdemo local`: heal, watch, load.

Each is an `async` function that runs until it is cancelled (or, for the load,
until its rounds are done or `stopping` is set), reads the options from
`LocalConfig`, writes what it saw into `DemoState` and reports events through
the output:

- `heal_loop`: the operator's heal engine over the replicas, every `--interval`;
- `monitor_loop`: scrapes each replica's /metrics for the panel, every second;
- `prometheus_loop`: reads Prometheus's targets, rules and lesson numbers (one
  `PrometheusAPI.snapshot()`: three requests) once per rule evaluation interval;
- `load_loop`: rounds of `load.run_load`, split over the replicas as a Service would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from promdemo_operator.cli.load import LoadError, LoadSummary, run_load
from promdemo_operator.cli.local.health import PROMETHEUS_CHILD, SELECTOR, Place, read_health
from promdemo_operator.cli.local.options import LocalConfig
from promdemo_operator.cli.local.session import DemoState, Replica
from promdemo_operator.cli.local.ui import Output
from promdemo_operator.core.duration import format_seconds as _s
from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.engine import CheckResult, HealEngine, PodTarget
from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import PromAPIError, targets_status

#: How often the panel's numbers are read from the replicas.
MONITOR_SECONDS = 1.0
#: The metrics the panel shows, summed over their label sets.
PANEL_METRICS = ("product_inventory", "inventory_resets_total", "http_requests_total")
LOAD_TIMEOUT_SECONDS = 30.0
#: Prometheus is read no more often than this, however short its evaluation interval.
PROMETHEUS_MIN_REFRESH_SECONDS = 1.0
PROMETHEUS_TIMEOUT_SECONDS = 5.0
#: A Prometheus this young may not list its targets yet: its discovery manager hands
#: new targets to the scrape manager at most every 5 s.
PROMETHEUS_START_SECONDS = 10.0
#: The first load round waits at most this long for Prometheus's first scrape of every replica.
FIRST_SCRAPE_WAIT_SECONDS = 30.0


# --------------------------------------------------------------------------- heal


def heal_policy(config: LocalConfig) -> HealPolicy:
    """The policy of a PromDemo's `spec.autoHeal`, from the command line's options."""
    return HealPolicy(
        PolicyConfig(
            threshold=config.threshold,
            interval=config.interval_seconds,
            for_seconds=config.for_seconds,
            cooldown=config.cooldown_seconds,
        )
    )


async def heal_loop(
    state: DemoState, out: Output, *, token: str, enabled: asyncio.Event | None = None
) -> None:
    """Check every replica each `--interval` and reset the ones the policy says are due.

    With `enabled` (`--lessons`), nothing happens until that event is set.
    """
    config = state.config
    if enabled is not None:
        await enabled.wait()
        state.heal_paused = False
        out.event(
            f"heal: on: every {_s(config.interval_seconds)}, reset a replica whose inventory "
            f"< {config.threshold:g} for {_s(config.for_seconds)} "
            "(lesson 13: Prometheus shows the reset at its next scrape)"
        )
    pods = [PodTarget(r.name, r.url) for r in state.replicas]
    loop = asyncio.get_running_loop()
    async with HealEngine(
        heal_policy(config), token=token, timeout=2.0, promdemo="local"
    ) as engine:
        while True:
            started = loop.time()
            report_check(state, out, await engine.check(pods))
            # A fixed period, like Prometheus's evaluation_interval, whatever the check took.
            await asyncio.sleep(max(0.0, config.interval_seconds - (loop.time() - started)))


def report_check(state: DemoState, out: Output, result: CheckResult) -> None:
    """Record one check's resets, readings and failures; print each reset."""
    by_name = {r.name: r for r in state.replicas}
    threshold = state.config.threshold
    for reset in result.resets:
        state.heal_count += 1
        replica = by_name[reset.pod]
        replica.state.heals += 1
        replica.state.last_heal = time.time()
        replica.state.saw(reset.before)
        after = "?" if reset.after is None else f"{reset.after:g}"
        msg = f"heal: reset {reset.pod} ({replica.instance}) inventory {reset.before:g} -> {after}"
        if reset.latency is not None:
            msg += f" ({reset.latency:.1f}s after it was first seen below {threshold:g})"
        out.event(msg)
    for pod, decision in result.decisions.items():
        if decision.value is not None:
            by_name[pod].state.saw(decision.value)
    for failure in result.failures:
        by_name[failure.pod].state.problem = f"{failure.stage} {failure.reason}"


# --------------------------------------------------------------------------- monitor


def panel_values(metrics_text: str) -> dict[str, float]:
    """The panel's numbers from a replica's /metrics: sums, and orders by result."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "orders_total":
                key = f"orders_{s.labels.get('result')}"
            elif s.name in PANEL_METRICS:
                key = s.name
            else:
                continue
            values[key] = values.get(key, 0.0) + s.value
    return values


async def monitor_loop(state: DemoState, out: Output) -> None:
    """Read every replica's /metrics each second and refresh the output."""
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:

        async def scrape(r: Replica) -> None:
            try:
                text = (await client.get(f"{r.url}/metrics")).text
                r.state.update(panel_values(text), time.monotonic())
            except (httpx.HTTPError, ValueError) as e:
                r.state.problem = f"unreachable ({type(e).__name__})"

        while True:
            await asyncio.gather(*(scrape(r) for r in state.replicas))
            out.status(state)
            await asyncio.sleep(MONITOR_SECONDS)


# --------------------------------------------------------------------------- prometheus


def refresh_seconds(config: LocalConfig, evaluation_interval: float | None = None) -> float:
    """How often to read Prometheus: never faster than its rules are evaluated.

    The recorded numbers and the alerts change once per evaluation: reading them
    more often costs requests and shows nothing new. `evaluation_interval` is the
    one Prometheus reports (its groups' `interval`); the configured one counts too.
    """
    return max(
        PROMETHEUS_MIN_REFRESH_SECONDS,
        config.scrape_interval_seconds,  # the evaluation interval monitoring.py configures
        evaluation_interval or 0.0,
    )


def place_of(state: DemoState, workdir: Path) -> Place:
    """Where the parts are, and which child process exited (for the fixes' wording)."""
    children = [(r.name, r.child) for r in state.replicas]
    if state.prometheus_child is not None:
        children.append((PROMETHEUS_CHILD, state.prometheus_child))
    exited = {name: code for name, child in children if (code := child.returncode) is not None}
    ready = state.prometheus_ready_at
    grace = PROMETHEUS_START_SECONDS + 2 * state.config.scrape_interval_seconds
    return Place(
        prometheus_url=state.prometheus_url or "",
        workdir=workdir,
        replicas={r.instance: r.name for r in state.replicas},
        exited=exited,
        starting=ready is not None and time.monotonic() - ready < grace,
    )


async def prometheus_loop(
    state: DemoState, out: Output, *, workdir: Path, api: PrometheusAPI | None = None
) -> None:
    """Read Prometheus once per refresh interval: one targets, one rules, one query call.

    The panel and the plain lines read `state.health`; they never ask Prometheus
    themselves, so the cost stays three requests per interval whatever shows them.
    """
    if state.prometheus_url is None:
        return
    every = refresh_seconds(state.config)
    async with contextlib.AsyncExitStack() as stack:
        if api is None:
            client = await stack.enter_async_context(
                httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT_SECONDS, trust_env=False)
            )
            api = PrometheusAPI(state.prometheus_url, client=client)
        while True:
            state.health_every = every
            snapshot = await api.snapshot()
            state.health = read_health(snapshot, place_of(state, workdir))
            out.prometheus(state)
            every = refresh_seconds(state.config, state.health.evaluation_interval)
            # The pause comes after the reading: two rounds are never closer than `every`.
            await asyncio.sleep(every)


async def first_scrape(
    state: DemoState, *, timeout: float = FIRST_SCRAPE_WAIT_SECONDS, period: float = 0.5
) -> bool:
    """Wait until Prometheus has scraped every replica (True), or `timeout` (False).

    A burst sent before the first scrape is in the first sample already: `rate()`
    never sees it, and the lesson numbers would miss it. Asks /api/v1/targets
    every `period` (a few calls at start only: the panel's reading is slower).
    """
    if state.prometheus_url is None:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT_SECONDS, trust_env=False) as client:
        api = PrometheusAPI(state.prometheus_url, client=client)
        while loop.time() < deadline:
            with contextlib.suppress(PromAPIError):
                targets = targets_status(await api.targets(), SELECTOR)
                if targets.total and targets.up >= len(state.replicas):
                    return True
            await asyncio.sleep(period)
    return False


# --------------------------------------------------------------------------- load


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as possible (the first get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def load_loop(state: DemoState, out: Output, *, stopping: asyncio.Event) -> None:
    """Rounds of `--load-orders` orders, `--load-pause` apart, until stopped or done."""
    config = state.config
    replicas = state.replicas
    orders = split_evenly(config.load_orders, len(replicas))
    concurrency = split_evenly(config.load_concurrency, len(replicas))
    # Let the panel and Prometheus see the full stock once before the first burst.
    if state.prometheus_url is None:
        await asyncio.sleep(min(2.0, config.interval_seconds))
    elif not await first_scrape(state):
        out.warn("Prometheus has not scraped every replica yet; the load starts anyway")
    while config.load_rounds == 0 or state.load_round < config.load_rounds:
        state.load_round += 1
        n = state.load_round
        out.event(
            f"load round {n}: {config.load_orders} orders, "
            f"{min(config.load_orders, config.load_concurrency)} at once, "
            f"over {len(replicas)} replica(s)"
        )
        jobs = [
            run_load(
                r.url,
                orders=o,
                concurrency=max(1, min(c, o)),
                check=False,
                timeout_seconds=LOAD_TIMEOUT_SECONDS,
            )
            for r, o, c in zip(replicas, orders, concurrency, strict=True)
            if o > 0
        ]
        out.event(round_line(n, await asyncio.gather(*jobs, return_exceptions=True)))
        if config.load_rounds and state.load_round >= config.load_rounds:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=config.load_pause_seconds)
        if stopping.is_set():
            break


def round_line(n: int, results: Sequence[LoadSummary | BaseException]) -> str:
    """One line for a finished round: the status codes summed over the replicas."""
    statuses: dict[int, int] = {}
    errors = 0
    elapsed = 0.0
    for res in results:
        if isinstance(res, LoadError | httpx.HTTPError):
            errors += 1
            continue
        if isinstance(res, BaseException):
            raise res
        for code, count in res.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
        errors += res.failed_transport
        elapsed = max(elapsed, res.elapsed_seconds)
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    extra = f", {errors} without answer" if errors else ""
    return (
        f"load round {n} done in {elapsed:.1f}s: HTTP {codes or 'none'}{extra}"
        " (200 = sold, 409 = out of stock, 502 = dependency error)"
    )
