"""The heal engine's per-pod-UID guard: an address that now serves another pod.

A pod's IP goes to the next pod once its pod is gone. Each "address" here is a
path on one loopback stub server, served by whichever fake app the test puts
there; a fake app names itself (`X-Promdemo-Pod-Uid`) on `/metrics` and, as the
real app does, refuses with 409 a reset whose `X-Promdemo-Expected-Pod-Uid`
names another pod. The policy runs on a fake clock; HTTP is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from promdemo_app import reset as app_reset
from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.engine import EXPECTED_POD_UID_HEADER, HealEngine, PodTarget
from promdemo_operator.heal.metrics import HealMetrics
from promdemo_operator.heal.pod_client import POD_UID_HEADER

TOKEN = "s3cret"
T0 = 1_700_000_000.0
UID_A = "aaaaaaaa-0000-4000-8000-00000000000a"
UID_B = "bbbbbbbb-0000-4000-8000-00000000000b"


@dataclass
class FakeApp:
    uid: str
    value: float = -5.0
    names_itself: bool = True  # False: an app outside Kubernetes (or an older one)
    scrapes: int = 0
    resets: int = 0
    reset_headers: list[dict[str, str]] = field(default_factory=list)


class Stub:
    def __init__(self) -> None:
        self.addresses: dict[str, FakeApp] = {}  # address → the app that answers there
        self.after_scrape: Callable[[], None] | None = None
        self.url = ""

    def target(self, address: str, uid: str, name: str = "shop-a") -> PodTarget:
        return PodTarget(name, f"{self.url}/ip/{address}", uid=uid)

    def _uid_header(self, app: FakeApp) -> dict[str, str]:
        return {POD_UID_HEADER: app.uid} if app.names_itself else {}

    async def metrics(self, request: web.Request) -> web.Response:
        app = self.addresses[request.match_info["address"]]
        app.scrapes += 1
        if self.after_scrape is not None:
            self.after_scrape()
        return web.Response(
            text=f"# TYPE product_inventory gauge\nproduct_inventory {app.value}\n",
            headers=self._uid_header(app),
        )

    async def reset(self, request: web.Request) -> web.Response:
        app = self.addresses[request.match_info["address"]]
        app.reset_headers.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        expected = request.headers.get(EXPECTED_POD_UID_HEADER, "")
        if app.names_itself and expected and expected != app.uid:
            return web.json_response(
                {"error": "meant for another pod", "pod_uid": app.uid}, status=409
            )
        app.resets += 1
        app.value = 100.0
        return web.json_response({"inventory": 100})


@contextlib.asynccontextmanager
async def stub_server() -> AsyncIterator[Stub]:
    stub = Stub()
    app = web.Application()
    app.router.add_get("/ip/{address}/metrics", stub.metrics)
    app.router.add_post("/ip/{address}/inventory/reset", stub.reset)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield stub
    finally:
        await runner.cleanup()


def run(test: Callable[[Stub], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with stub_server() as stub:
            return await test(stub)

    return asyncio.run(main())


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def make_engine() -> tuple[HealEngine, HealMetrics, Clock]:
    metrics = HealMetrics(CollectorRegistry())
    clock = Clock()
    engine = HealEngine(
        HealPolicy(PolicyConfig(cooldown=600)),
        token=TOKEN,
        namespace="demo",
        promdemo="shop",
        metrics=metrics,
        clock=clock,
    )
    return engine, metrics, clock


def failures(metrics: HealMetrics, stage: str) -> float:
    assert metrics.registry is not None
    name = f"promdemo_heal_{stage}_failures_total"
    labels = {"namespace": "demo", "promdemo": "shop", "reason": "wrong_pod"}
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_operator_and_the_app_use_the_same_headers() -> None:
    # Written twice on purpose (the operator never imports the app): kept equal here.
    assert POD_UID_HEADER == app_reset.POD_UID_HEADER
    assert EXPECTED_POD_UID_HEADER == app_reset.EXPECTED_POD_UID_HEADER


def test_a_reading_from_another_pod_is_dropped_and_that_address_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(stub: Stub) -> None:
        # Pod A is gone; its IP now serves pod B, oversold too: B must not be reset as A.
        pod_b = stub.addresses["10.0.0.5"] = FakeApp(UID_B, value=-7)
        engine, metrics, clock = make_engine()
        async with engine:
            first = await engine.check([stub.target("10.0.0.5", UID_A)])
            assert (first.resets, first.inventory) == ([], {})
            assert [(f.stage, f.reason) for f in first.failures] == [("scrape", "wrong_pod")]
            assert UID_B in first.failures[0].detail
            clock.t += 5
            second = await engine.check([stub.target("10.0.0.5", UID_A)])
            assert (second.skipped, second.failures) == ({"shop-a": "wrong_pod"}, [])
            assert pod_b.scrapes == 1, "an address known to serve another pod is not read again"
            # The watch caught up: B under its own name and UID is read and healed.
            clock.t += 5
            third = await engine.check([stub.target("10.0.0.5", UID_B, name="shop-b")])
        assert [(r.pod, r.after) for r in third.resets] == [("shop-b", 100)]
        assert pod_b.resets == 1
        assert failures(metrics, "scrape") == 1
        said = [r.getMessage() for r in caplog.records if "shop-a" in r.getMessage()]
        assert len(said) == 1, said  # one line, however many checks
        assert "(uid " + UID_A in said[0]
        assert UID_B in said[0]

    caplog.set_level(logging.WARNING, logger="promdemo.heal")
    run(test)


def test_a_reset_refused_409_by_the_pod_now_at_the_address_costs_no_cooldown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(stub: Stub) -> None:
        # A is read (negative), then deleted, and B gets its IP before the reset.
        pod_a = stub.addresses["10.0.0.5"] = FakeApp(UID_A, value=-3)
        pod_b = FakeApp(UID_B, value=-9)
        reads = 0

        def swap_after_the_live_read() -> None:
            nonlocal reads
            reads += 1
            if reads == 2:  # the check's read, then the reset path's live read
                stub.addresses["10.0.0.5"] = pod_b

        stub.after_scrape = swap_after_the_live_read
        engine, metrics, clock = make_engine()
        async with engine:
            result = await engine.check([stub.target("10.0.0.5", UID_A)])
            assert result.resets == []
            assert [(f.stage, f.reason) for f in result.failures] == [("reset", "wrong_pod")]
            assert result.skipped == {"shop-a": "wrong_pod"}
            assert "shop-a" not in result.inventory  # the value read may have been B's
            assert engine.policy.last_reset("shop-a") is None, "nothing was reset: no cooldown"
            clock.t += 5
            again = await engine.check([stub.target("10.0.0.5", UID_A)])
            assert again.skipped == {"shop-a": "wrong_pod"}
        assert (pod_a.resets, pod_b.resets) == (0, 0)
        assert len(pod_b.reset_headers) == 1, "no second reset sent to that address"
        assert pod_b.reset_headers[0][EXPECTED_POD_UID_HEADER] == UID_A
        assert failures(metrics, "reset") == 1
        assert any("POST /inventory/reset" in r.getMessage() for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="promdemo.heal")
    run(test)


def test_the_webhook_path_says_wrong_pod() -> None:
    async def test(stub: Stub) -> None:
        pod_b = stub.addresses["10.0.0.5"] = FakeApp(UID_B, value=-7)
        engine, metrics, _ = make_engine()
        async with engine:
            outcome = await engine.heal(stub.target("10.0.0.5", UID_A))
            again = await engine.heal(stub.target("10.0.0.5", UID_A))
        assert (outcome.outcome, again.outcome) == ("wrong_pod", "wrong_pod")
        assert (pod_b.resets, pod_b.scrapes, pod_b.reset_headers) == (0, 1, [])
        assert failures(metrics, "scrape") == 1

    run(test)


def test_the_right_pod_is_reset_with_its_uid_and_an_unnamed_app_is_trusted() -> None:
    async def test(stub: Stub) -> None:
        own = stub.addresses["10.0.0.5"] = FakeApp(UID_A, value=-2)
        unnamed = stub.addresses["10.0.0.6"] = FakeApp(UID_B, value=-2, names_itself=False)
        engine, _, _ = make_engine()
        targets = [stub.target("10.0.0.5", UID_A), stub.target("10.0.0.6", "", name="local")]
        async with engine:
            result = await engine.check(targets)
        assert sorted(r.pod for r in result.resets) == ["local", "shop-a"]
        assert own.reset_headers[0][EXPECTED_POD_UID_HEADER] == UID_A
        # A target whose UID is unknown (promdemo local) sends no expectation.
        assert EXPECTED_POD_UID_HEADER not in unnamed.reset_headers[0]

    run(test)
