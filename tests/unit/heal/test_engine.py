"""The heal engine against a tiny aiohttp stand-in for pods: values, garbage, slowness, resets.

Every "pod" is a path prefix on one loopback stub server (``/pod/<name>``), with
a behaviour for `/metrics` and for `/inventory/reset`. The policy runs on a
fake clock; HTTP is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from promdemo_operator.core.heal_policy import HealPolicy, PolicyConfig
from promdemo_operator.heal.access import PROXY_TOKEN_HEADER
from promdemo_operator.heal.engine import HealEngine, PodTarget, parse_inventory
from promdemo_operator.heal.metrics import HealMetrics
from promdemo_operator.heal.pod_client import PodHttp

TOKEN = "s3cret"
T0 = 1_700_000_000.0

PAGE = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{{method="POST",route="/order",status="200"}} 12.0
# HELP product_inventory Units in stock.
# TYPE product_inventory gauge
product_inventory {value}
# HELP product_inventory_extra Not the gauge.
# TYPE product_inventory_extra gauge
product_inventory_extra -999.0
"""


@dataclass
class FakePod:
    value: float = 100.0
    metrics: str = "ok"  # ok | garbage | missing | slow | http500 | html | duplicates
    reset: str = "ok"  # ok | http500 | garbage | slow | nan | endless
    resets: int = 0
    reset_calls: int = 0  # every authorized POST, answered or not
    reset_headers: list[dict[str, str]] = field(default_factory=list)
    scrapes: int = 0
    queries: list[str] = field(default_factory=list)  # the query string of each GET /metrics
    after_scrape: Callable[[FakePod], None] | None = None


class Stub:
    def __init__(self) -> None:
        self.pods: dict[str, FakePod] = {}
        self.url = ""

    def target(self, name: str, ready: bool = True) -> PodTarget:
        return PodTarget(name, f"{self.url}/pod/{name}", ready)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        pod = self.pods[request.match_info["name"]]
        pod.scrapes += 1
        pod.queries.append(request.query_string)
        if pod.after_scrape:
            pod.after_scrape(pod)
        if pod.metrics == "slow":
            await asyncio.sleep(30)
        if pod.metrics == "http500":
            return web.Response(status=500, text="boom")
        if pod.metrics == "garbage":
            return web.Response(text="product_inventory{ this is not { exposition\n")
        if pod.metrics == "html":
            return web.Response(text="<html><body>{{ not metrics }}</body></html>")
        if pod.metrics == "missing":
            return web.Response(text="# TYPE up gauge\nup 1\n")
        if pod.metrics == "duplicates":
            return web.Response(text="product_inventory 5\nproduct_inventory -3\n")
        return web.Response(text=PAGE.format(value=pod.value))

    async def reset(self, request: web.Request) -> web.StreamResponse:
        pod = self.pods[request.match_info["name"]]
        pod.reset_headers.append(dict(request.headers))
        given = (
            request.headers.get("Authorization")
            or f"Bearer {request.headers.get(PROXY_TOKEN_HEADER)}"
        )
        if given != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        pod.reset_calls += 1
        if pod.reset == "slow":
            await asyncio.sleep(30)
        if pod.reset == "http500":
            return web.Response(status=500, text="reset broke")
        if pod.reset == "echo":  # a pod that answers an error quoting what it was sent
            auth = request.headers.get("Authorization", "")
            error = f"refused {TOKEN}; Authorization: {auth}"
            return web.json_response({"error": error, "headers": {**request.headers}}, status=503)
        pod.resets += 1
        pod.value = 100.0
        if pod.reset == "garbage":
            return web.Response(text="done?")
        if pod.reset == "nan":
            return web.Response(text='{"inventory": NaN}', content_type="application/json")
        if pod.reset == "endless":
            resp = web.StreamResponse()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError):
                while True:
                    await resp.write(b'{"inventory": 100' + b" " * 65536)
            return resp
        return web.json_response({"inventory": 100})


@contextlib.asynccontextmanager
async def stub_server() -> AsyncIterator[Stub]:
    stub = Stub()
    app = web.Application()
    app.router.add_get("/pod/{name}/metrics", stub.metrics)
    app.router.add_post("/pod/{name}/inventory/reset", stub.reset)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the bound address, through the public API
    stub.url = f"http://127.0.0.1:{port}"
    try:
        yield stub
    finally:
        await runner.cleanup()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(test: Callable[[Stub], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with stub_server() as stub:
            return await test(stub)

    return asyncio.run(main())


def make_engine(
    config: PolicyConfig | None = None, *, clock: Clock | None = None, **kw: Any
) -> tuple[HealEngine, HealMetrics, Clock]:
    metrics = HealMetrics(CollectorRegistry())
    clock = clock or Clock()
    engine = HealEngine(
        HealPolicy(config or PolicyConfig()),
        token=TOKEN,
        timeout=kw.pop("timeout", 2.0),
        namespace="demo",
        promdemo="shop",
        metrics=metrics,
        clock=clock,
        **kw,
    )
    return engine, metrics, clock


def sample(metrics: HealMetrics, name: str, **labels: str) -> float:
    assert metrics.registry is not None
    labels = {"namespace": "demo", "promdemo": "shop", **labels}
    got = metrics.registry.get_sample_value(name, labels)
    return got or 0.0


# -- parsing ------------------------------------------------------------------


def test_parse_inventory_reads_only_the_gauge() -> None:
    assert parse_inventory(PAGE.format(value="-12.0")) == -12
    assert parse_inventory("product_inventory 7\n") == 7


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("# TYPE up gauge\nup 1\n", "missing"),
        ("", "missing"),
        ("product_inventory{ broken\n", "garbage"),
        ("product_inventory NaN\n", "garbage"),
        ("<html>{{ nope }}</html>", "garbage"),
    ],
)
def test_parse_inventory_errors(text: str, kind: str) -> None:
    with pytest.raises(ValueError, match=f"^{kind}"):
        parse_inventory(text)


# -- check(): one evaluation of all pods ------------------------------------------


def test_resets_only_the_negative_pod_and_confirms() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"neg": FakePod(-7), "ok": FakePod(40), "zero": FakePod(0)}
        engine, metrics, clock = make_engine()
        async with engine:
            result = await engine.check([stub.target(n) for n in stub.pods])
        assert [(r.pod, r.before, r.after) for r in result.resets] == [("neg", -7, 100)]
        assert result.resets[0].source == "direct"
        assert result.resets[0].latency == 0.0
        assert stub.pods["neg"].resets == 1
        assert stub.pods["ok"].resets == stub.pods["zero"].resets == 0
        assert result.inventory == {"neg": 100, "ok": 40, "zero": 0}
        assert result.failures == []
        # reset went to that pod only, with the bearer token, no proxy header by default
        headers = stub.pods["neg"].reset_headers[0]
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert PROXY_TOKEN_HEADER not in headers
        assert sample(metrics, "promdemo_inventory_resets_total") == 1
        assert sample(metrics, "promdemo_heal_latency_seconds_count", source="direct") == 1
        assert sample(metrics, "promdemo_heal_lowest_inventory") == -7
        assert engine.policy.last_reset("neg") == clock.t

    run(test)


def test_for_across_checks_and_latency_from_first_negative() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-1)}
        engine, _, clock = make_engine(PolicyConfig(interval=5, for_seconds=10))
        async with engine:
            pods = [stub.target("p")]
            r1 = await engine.check(pods)
            clock.t += 5
            r2 = await engine.check(pods)
            clock.t += 5
            r3 = await engine.check(pods)
        assert r1.resets == r2.resets == []
        assert r1.decisions["p"].action.value == "pending"
        assert [r.pod for r in r3.resets] == ["p"]
        assert r3.resets[0].latency == pytest.approx(10.0)
        assert stub.pods["p"].resets == 1

    run(test)


def test_recovered_before_reset_is_not_reset() -> None:
    async def test(stub: Stub) -> None:
        def recover_on_second_read(pod: FakePod) -> None:
            if pod.scrapes == 2:
                pod.value = 5

        stub.pods = {"p": FakePod(-3, after_scrape=recover_on_second_read)}
        engine, _, _ = make_engine()
        async with engine:
            result = await engine.check([stub.target("p")])
        assert result.resets == []
        assert result.skipped == {"p": "recovered"}
        assert result.inventory == {"p": 5}
        assert stub.pods["p"].resets == 0
        assert stub.pods["p"].scrapes == 2  # the check, then the live re-read

    run(test)


def test_cooldown_prevents_a_second_reset() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-3)}
        engine, _, clock = make_engine(PolicyConfig(cooldown=30))
        async with engine:
            await engine.check([stub.target("p")])
            stub.pods["p"].value = -50  # oversold again right away
            clock.t += 5
            second = await engine.check([stub.target("p")])
            clock.t += 30
            third = await engine.check([stub.target("p")])
        assert second.resets == []
        assert second.skipped == {"p": "cooldown"}
        assert [r.before for r in third.resets] == [-50]
        assert stub.pods["p"].resets == 2

    run(test)


def test_not_ready_and_addressless_pods_are_skipped_unread() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"a": FakePod(-1), "b": FakePod(-1)}
        engine, _, _ = make_engine()
        async with engine:
            result = await engine.check([stub.target("a", ready=False), PodTarget("b", None)])
        assert result.skipped == {"a": "not_ready", "b": "no_address"}
        assert stub.pods["a"].scrapes == stub.pods["b"].scrapes == 0

    run(test)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("garbage", "garbage"),
        ("html", "garbage"),
        ("missing", "missing"),
        ("http500", "http_status"),
        ("slow", "timeout"),
        ("duplicates", "garbage"),
    ],
)
def test_scrape_failures_are_counted_and_do_not_stop_the_others(
    behaviour: str, reason: str
) -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"bad": FakePod(-1, metrics=behaviour), "neg": FakePod(-2)}
        engine, metrics, _ = make_engine(timeout=0.5)
        async with engine:
            result = await engine.check([stub.target("bad"), stub.target("neg")])
        assert [(f.pod, f.stage, f.reason) for f in result.failures] == [("bad", "scrape", reason)]
        assert [r.pod for r in result.resets] == ["neg"]
        assert "bad" not in result.inventory
        assert sample(metrics, "promdemo_heal_scrape_failures_total", reason=reason) == 1

    run(test)


def test_unreachable_pod() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"neg": FakePod(-2)}
        engine, metrics, _ = make_engine()
        # a port nothing listens on (the stub's port, closed after this test's server)
        dead = PodTarget("dead", "http://127.0.0.1:9/")
        async with engine:
            result = await engine.check([dead, stub.target("neg")])
        assert [(f.pod, f.reason) for f in result.failures] == [("dead", "unreachable")]
        assert [r.pod for r in result.resets] == ["neg"]
        assert sample(metrics, "promdemo_heal_scrape_failures_total", reason="unreachable") == 1

    run(test)


@pytest.mark.parametrize(("behaviour", "reason"), [("http500", "http_status"), ("slow", "timeout")])
def test_a_reset_that_may_have_happened_starts_the_cooldown(behaviour: str, reason: str) -> None:
    """A 5xx or a missing answer does not say the pod did not reset: no second reset
    within the cooldown (a late answer used to let every check reset again)."""

    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4, reset=behaviour)}
        engine, metrics, clock = make_engine(PolicyConfig(cooldown=30), timeout=0.5)
        async with engine:
            first = await engine.check([stub.target("p")])
            assert [(f.stage, f.reason) for f in first.failures] == [("reset", reason)]
            assert first.resets == []
            assert engine.policy.last_reset("p") == T0  # the attempt's time
            assert sample(metrics, "promdemo_heal_reset_failures_total", reason=reason) == 1
            stub.pods["p"].reset = "ok"
            stub.pods["p"].value = -4
            clock.t += 5
            second = await engine.check([stub.target("p")])
            assert second.skipped == {"p": "cooldown"}
            assert second.resets == []
            clock.t += 30
            third = await engine.check([stub.target("p")])
        assert [r.after for r in third.resets] == [100]
        assert stub.pods["p"].reset_calls == 2  # the failed attempt and the one after the cooldown

    run(test)


def test_wrong_token_is_a_refused_reset_retried_at_the_next_check() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4)}
        engine, _, clock = make_engine(PolicyConfig(cooldown=600))
        engine.token = "wrong"
        async with engine:
            result = await engine.check([stub.target("p")])
            assert result.failures[0].reason == "http_status"
            assert "401" in result.failures[0].detail
            assert stub.pods["p"].resets == 0
            # a 4xx says the pod did nothing: no cooldown, the next check resets
            assert engine.policy.last_reset("p") is None
            engine.token = TOKEN
            clock.t += 5
            second = await engine.check([stub.target("p")])
        assert [r.pod for r in second.resets] == ["p"]
        assert stub.pods["p"].resets == 1

    run(test)


def test_unconfirmed_reset_still_starts_the_cooldown() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4, reset="garbage")}
        engine, metrics, _ = make_engine()
        async with engine:
            result = await engine.check([stub.target("p")])
        assert [(r.before, r.after) for r in result.resets] == [(-4, None)]
        assert [(f.stage, f.reason) for f in result.failures] == [("reset", "garbage")]
        assert engine.policy.last_reset("p") is not None
        assert sample(metrics, "promdemo_inventory_resets_total") == 1

    run(test)


@pytest.mark.parametrize(("behaviour", "reason"), [("nan", "garbage"), ("endless", "too_large")])
def test_a_2xx_reset_with_an_unusable_answer_is_unconfirmed_never_a_value(
    behaviour: str, reason: str
) -> None:
    """`{"inventory": NaN}` or an endless answer: the reset happened (2xx), its value is
    unknown; nothing non-finite reaches the result the status is written from."""

    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4, reset=behaviour)}
        engine, metrics, _ = make_engine(timeout=2.0)
        async with engine:
            result = await engine.check([stub.target("p")])
        assert [(r.before, r.after) for r in result.resets] == [(-4, None)]
        assert [(f.stage, f.reason) for f in result.failures] == [("reset", reason)]
        assert result.inventory == {"p": -4}  # the value read before the reset
        assert engine.policy.last_reset("p") is not None
        assert sample(metrics, "promdemo_heal_reset_failures_total", reason=reason) == 1

    run(test)


def test_a_reset_failing_the_same_way_every_check_warns_once_and_counts_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With cooldown 0 a broken pod is reset at every check: the log says it once per
    change of reason (not a line per check), the failure counter has every attempt."""

    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4, reset="http500")}
        engine, metrics, clock = make_engine(PolicyConfig(cooldown=0))
        caplog.set_level(logging.DEBUG, logger="promdemo")
        async with engine:
            for _ in range(3):
                await engine.check([stub.target("p")])
                clock.t += 5
            warned = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warned) == 1, [r.getMessage() for r in warned]
            assert "reset of pod p failed (http_status)" in warned[0].getMessage()
            assert sample(metrics, "promdemo_heal_reset_failures_total", reason="http_status") == 3
            # Fixed, then broken again: said again.
            stub.pods["p"].reset = "ok"
            await engine.check([stub.target("p")])
            clock.t += 5
            stub.pods["p"].value, stub.pods["p"].reset = -4.0, "http500"
            await engine.check([stub.target("p")])
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 2, [r.getMessage() for r in warned]

    run(test)


def test_engines_share_one_pod_client_and_do_not_close_it() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"a": FakePod(-1), "b": FakePod(-2)}
        async with PodHttp() as shared:
            one, _, _ = make_engine(client=shared)
            two, _, _ = make_engine(client=shared)
            async with one:
                first = await one.check([stub.target("a")])
            async with two:  # `one` closed: the shared client still works
                second = await two.check([stub.target("b")])
        assert [r.pod for r in first.resets] == ["a"]
        assert [r.pod for r in second.resets] == ["b"]

    run(test)


def test_proxy_token_header_for_the_api_server_proxy() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4)}
        engine, _, _ = make_engine(proxy_token_header=True)
        async with engine:
            await engine.check([stub.target("p")])
        assert stub.pods["p"].reset_headers[0][PROXY_TOKEN_HEADER] == TOKEN
        assert "Authorization" not in stub.pods["p"].reset_headers[0]
        assert stub.pods["p"].resets == 1

    run(test)


# -- heal(): the single-pod path of the webhook ------------------------------------------


def test_heal_concurrent_duplicates_reset_once() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-9)}
        engine, metrics, clock = make_engine(PolicyConfig(for_seconds=60))
        async with engine:
            outcomes = await asyncio.gather(
                *(engine.heal(stub.target("p"), first_seen=clock.t - 2) for _ in range(5))
            )
        assert sorted(o.outcome for o in outcomes) == ["cooldown"] * 4 + ["reset"]
        assert stub.pods["p"].resets == 1
        done = next(o.reset for o in outcomes if o.reset)
        assert done is not None
        assert done.latency == pytest.approx(2.0)
        assert done.source == "alertmanager"
        assert sample(metrics, "promdemo_heal_latency_seconds_count", source="alertmanager") == 1

    run(test)


def test_heal_late_notification_after_recovery_does_nothing() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(12)}
        engine, _, _ = make_engine(PolicyConfig(cooldown=0))
        async with engine:
            outcome = await engine.heal(stub.target("p"))
        assert outcome.outcome == "recovered"
        assert outcome.value == 12
        assert stub.pods["p"].resets == 0

    run(test)


def test_heal_unreadable_pod_fails_without_reset() -> None:
    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-1, metrics="garbage")}
        engine, _, _ = make_engine()
        async with engine:
            outcome = await engine.heal(stub.target("p"))
        assert outcome.outcome == "failed"
        assert outcome.failure is not None
        assert outcome.failure.reason == "garbage"
        assert stub.pods["p"].resets == 0

    run(test)


# -- what a check asks for, what a pod's answer may put in the log ----------------------


def test_a_check_asks_for_the_gauge_alone_and_still_reads_a_full_page() -> None:
    """The check asks `?name[]=product_inventory` (prometheus_client answers the gauge
    alone); a pod that ignores the filter answers its whole page, read the same way."""

    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-7), "q": FakePod(3)}
        engine, _, _ = make_engine()
        async with engine:
            result = await engine.check([stub.target("p"), stub.target("q")], reset=False)
        assert result.inventory == {"p": -7, "q": 3}
        for pod in stub.pods.values():
            assert [parse_qs(q) for q in pod.queries] == [{"name[]": ["product_inventory"]}]

    run(test)


def test_a_pod_echoing_its_token_in_an_error_does_not_put_it_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hostile pod answers the reset with an error quoting the request's headers and
    the token: the failure and the log line say what happened, bounded, token redacted."""

    async def test(stub: Stub) -> None:
        stub.pods = {"p": FakePod(-4, reset="echo")}
        engine, _, _ = make_engine()
        caplog.set_level(logging.DEBUG, logger="promdemo")
        async with engine:
            result = await engine.check([stub.target("p")])
        [failure] = result.failures
        assert failure.reason == "http_status"
        assert "503" in failure.detail
        assert "refused <redacted>; Authorization: Bearer <redacted>" in failure.detail
        assert TOKEN not in failure.detail
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "answered 503" in logged
        assert TOKEN not in logged
        assert max(len(r.getMessage()) for r in caplog.records) < 400

    run(test)
