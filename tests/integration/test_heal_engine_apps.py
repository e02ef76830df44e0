"""The heal engine against real order-service processes on 127.0.0.2 and 127.0.0.3 ("pods").

Concurrent orders oversell one app below zero; the engine resets that one (with
the bearer token), leaves the healthy one alone, and skips and counts an app
that stops answering (frozen: timeout; stopped: unreachable).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.engine import HealEngine, PodTarget
from promdemo_operator.heal.metrics import HealMetrics
from tests.support.oversold_app import APP_ENV, TOKEN, inventory, oversell, resets_counted

pytestmark = pytest.mark.integration


def engine_for(metrics: HealMetrics, **policy: Any) -> HealEngine:
    return HealEngine(
        HealPolicy(PolicyConfig(**policy)),
        token=TOKEN,
        timeout=1.0,
        namespace="it",
        promdemo="shop",
        metrics=metrics,
    )


def metric(metrics: HealMetrics, name: str, **labels: str) -> float:
    assert metrics.registry is not None
    value = metrics.registry.get_sample_value(
        name, {"namespace": "it", "promdemo": "shop", **labels}
    )
    return value or 0.0


def test_engine_resets_the_oversold_app_and_leaves_the_healthy_one(start_app) -> None:
    _, url_a = start_app(env=APP_ENV, host="127.0.0.2")
    _, url_b = start_app(env=APP_ENV, host="127.0.0.3")
    negative = oversell(url_a)
    assert negative < 0, "the concurrent orders were expected to oversell"
    healthy = inventory(url_b)
    assert healthy == 5
    resets_a, resets_b = resets_counted(url_a), resets_counted(url_b)

    metrics = HealMetrics(CollectorRegistry())
    pods = [PodTarget("shop-a", url_a), PodTarget("shop-b", url_b)]

    async def check() -> Any:
        async with engine_for(metrics) as engine:
            return await engine.check(pods)

    result = asyncio.run(check())
    # a reset goes back to the initial inventory (5 here)
    assert [(r.pod, r.before, r.after) for r in result.resets] == [("shop-a", negative, 5)]
    assert result.failures == []
    assert result.inventory == {"shop-a": 5, "shop-b": 5}
    assert inventory(url_a) == 5
    assert inventory(url_b) == 5
    assert resets_counted(url_a) == resets_a + 1  # the app counted exactly one reset
    assert resets_counted(url_b) == resets_b == 0
    assert metric(metrics, "promdemo_inventory_resets_total") == 1


def test_engine_for_spans_checks_and_cooldown_holds(start_app) -> None:
    _, url = start_app(env=APP_ENV, host="127.0.0.2")
    metrics = HealMetrics(CollectorRegistry())
    pods = [PodTarget("shop-a", url)]

    async def scenario() -> list[Any]:
        async with engine_for(metrics, interval=0.2, for_seconds=0.3, cooldown=600) as engine:
            oversell(url)  # blocking here is fine: nothing else runs on this loop
            results = []
            # keep checking until the reset happened (for = 0.3 s needs >= 2 checks)
            for _ in range(50):
                results.append(await engine.check(pods))
                if results[-1].resets:
                    break
                await asyncio.sleep(0.2)
            # oversold again, right away: due again after `for`, but in cooldown
            oversell(url)
            for _ in range(4):
                results.append(await engine.check(pods))
                await asyncio.sleep(0.2)
            return results

    results = asyncio.run(scenario())
    first_reset = next(i for i, r in enumerate(results) if r.resets)
    assert first_reset >= 1, "for > 0 must hold the reset back at the first check"
    assert results[0].decisions["shop-a"].action.value == "pending"
    assert all(r.resets == [] for r in results[first_reset + 1 :])
    assert results[-1].skipped == {"shop-a": "cooldown"}
    assert sum(len(r.resets) for r in results) == 1
    assert inventory(url) < 0


def test_a_pod_that_stops_answering_is_skipped_and_counted(start_app) -> None:
    proc_a, url_a = start_app(env=APP_ENV, host="127.0.0.2")
    proc_b, url_b = start_app(env=APP_ENV, host="127.0.0.3")
    metrics = HealMetrics(CollectorRegistry())
    pods = [PodTarget("shop-a", url_a), PodTarget("shop-b", url_b)]
    oversell(url_a)

    async def check() -> Any:
        async with engine_for(metrics) as engine:
            return await engine.check(pods)

    # B frozen (SIGSTOP to its process group: gunicorn's master and its worker):
    # its socket accepts, nothing answers → timeout.
    os.killpg(proc_b.pid, signal.SIGSTOP)
    try:
        frozen = asyncio.run(check())
    finally:
        os.killpg(proc_b.pid, signal.SIGCONT)
    assert [(f.pod, f.reason) for f in frozen.failures] == [("shop-b", "timeout")]
    assert [r.pod for r in frozen.resets] == ["shop-a"]

    # B gone: connection refused → unreachable; A is still read (and healthy now).
    proc_b.stop()
    gone = asyncio.run(check())
    assert [(f.pod, f.reason) for f in gone.failures] == [("shop-b", "unreachable")]
    assert gone.inventory == {"shop-a": 5}
    assert metric(metrics, "promdemo_heal_scrape_failures_total", reason="timeout") == 1
    assert metric(metrics, "promdemo_heal_scrape_failures_total", reason="unreachable") == 1
    assert proc_a.alive()
