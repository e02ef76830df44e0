"""The per-pod-UID guard with real order-service processes ("pods" on 127.0.0.2/.3).

Two apps of one PromDemo (same reset token), each with its own `PROMDEMO_POD_UID`,
both oversold. The engine is told pod A sits at an address that actually serves
pod B (A deleted, its IP given to B): B is never reset in A's name, and the log
and the metrics say why (`wrong_pod`). Once the target is B under B's own UID,
B is healed: the guard, not some other fault, kept it back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.engine import HealEngine, PodTarget
from promdemo_operator.heal.metrics import HealMetrics
from tests.support.address_handover import AddressHandover
from tests.support.oversold_app import APP_ENV, TOKEN, inventory, oversell, resets_counted

pytestmark = pytest.mark.integration

UID_A = "0b6c7a0e-aaaa-4c36-9d43-1f2a3b4c5d6e"
UID_B = "5f1e2d3c-bbbb-4a9b-8c7d-6e5f4a3b2c1d"


def engine_for(metrics: HealMetrics) -> HealEngine:
    return HealEngine(
        HealPolicy(PolicyConfig(cooldown=600)),
        token=TOKEN,
        timeout=2.0,
        namespace="it",
        promdemo="shop",
        metrics=metrics,
    )


def wrong_pod(metrics: HealMetrics, stage: str) -> float:
    assert metrics.registry is not None
    labels = {"namespace": "it", "promdemo": "shop", "reason": "wrong_pod"}
    value = metrics.registry.get_sample_value(f"promdemo_heal_{stage}_failures_total", labels)
    return value or 0.0


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def two_pods(start_app) -> tuple[str, str]:
    _, url_a = start_app(env={**APP_ENV, "PROMDEMO_POD_UID": UID_A}, host="127.0.0.2")
    _, url_b = start_app(env={**APP_ENV, "PROMDEMO_POD_UID": UID_B}, host="127.0.0.3")
    assert oversell(url_a) < 0
    assert oversell(url_b) < 0
    return url_a, url_b


def test_pod_a_at_pod_bs_address_never_resets_b(
    two_pods: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url_b = two_pods
    caplog.set_level(logging.INFO, logger="promdemo.heal")
    b_before = inventory(url_b)
    metrics = HealMetrics(CollectorRegistry())

    async def scenario() -> list[Any]:
        async with engine_for(metrics) as engine:
            stale = [PodTarget("shop-a", url_b, uid=UID_A)]
            results = [await engine.check(stale), await engine.check(stale)]
            results.append(await engine.heal(stale[0]))  # the webhook's path
            # The watch caught up: the pod at that address is B, under its own UID.
            results.append(await engine.check([PodTarget("shop-b", url_b, uid=UID_B)]))
            return results

    first, second, webhook, caught_up = asyncio.run(scenario())
    assert first.resets == []
    assert [(f.pod, f.reason) for f in first.failures] == [("shop-a", "wrong_pod")]
    assert UID_B in first.failures[0].detail
    assert second.skipped == {"shop-a": "wrong_pod"}
    assert webhook.outcome == "wrong_pod"
    assert wrong_pod(metrics, "scrape") == 1
    assert any("shop-a" in w and "is not at" in w and UID_B in w for w in warnings(caplog))
    # B was reset only as itself, and only once.
    assert [(r.pod, r.before, r.after) for r in caught_up.resets] == [("shop-b", b_before, 5)]
    assert resets_counted(url_b) == 1


def test_a_reset_reaching_another_pod_is_refused_and_costs_no_cooldown(
    two_pods: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url_a, url_b = two_pods
    caplog.set_level(logging.INFO, logger="promdemo.heal")
    a_before, b_before = inventory(url_a), inventory(url_b)
    metrics = HealMetrics(CollectorRegistry())

    with AddressHandover(reads_to=url_a, resets_to=url_b, host="127.0.0.4") as address:

        async def scenario() -> list[Any]:
            async with engine_for(metrics) as engine:
                target = [PodTarget("shop-a", address.url, uid=UID_A)]
                results = [await engine.check(target), await engine.check(target)]
                results.append(engine.policy.last_reset("shop-a"))
                return results

        first, second, last_reset = asyncio.run(scenario())
        routed = list(address.routed)

    # The engine read A there, then its reset reached B, which refused it.
    assert "reset" in routed
    assert routed.count("reset") == 1, "no second reset sent to that address"
    assert first.resets == []
    assert [(f.stage, f.reason) for f in first.failures] == [("reset", "wrong_pod")]
    assert "409" in first.failures[0].detail
    assert second.skipped == {"shop-a": "wrong_pod"}
    assert last_reset is None, "nothing was reset, so no cooldown was consumed"
    assert (inventory(url_a), inventory(url_b)) == (a_before, b_before)
    assert (resets_counted(url_a), resets_counted(url_b)) == (0, 0)
    assert wrong_pod(metrics, "reset") == 1
    assert any("POST /inventory/reset answered 409" in w for w in warnings(caplog))
