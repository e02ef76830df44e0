"""promapi against a real Prometheus scraping a real app, shaped as prometheus-operator shapes it.

One environment per module: the order service (job `shop` in namespace `demo`,
the labels a ServiceMonitor's relabelling gives it), a second "PromDemo"
`other/shop` whose target is a closed port, and Prometheus (scrape and
evaluation 1 s) with one rules file per PromDemo, as prometheus-operator loads
one file per PrometheusRule: same group names, different `{namespace, job}`
matchers. After a burst of orders, the module must report for each PromDemo
its own targets, rules and lesson numbers, and the expected numbers come from
the load's answers and the app's own /metrics.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from promdemo_operator.core.rules import ALERTING_GROUP, RECORDING_GROUP, rules_file
from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.cache import SnapshotCache
from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import PromAPIError, PromDemoHealth
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, python_module, wait_http_ok, wait_until
from tests.support.tools import require_binary

pytestmark = pytest.mark.integration

ORDERS = 40
CONCURRENCY = 10
APP_ENV = {
    "PROMDEMO_INITIAL_INVENTORY": "30",
    "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.1",
    "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.1",
    "PROMDEMO_PROCESSING_MIN_SECONDS": "0.1",
    "PROMDEMO_PROCESSING_MAX_SECONDS": "0.1",
    "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0.2",
}
WINDOW_SECONDS = 300  # the recording rules' [5m]


@dataclass
class Env:
    url: str  # Prometheus
    statuses: Counter[int]
    buckets: dict[float, float]  # le -> cumulative count of POST /order, from the app itself
    dead_target: str


def _scrape_job(namespace: str, target: str) -> dict:
    """A scrape job labelled as a ServiceMonitor's relabelling labels it (job = Service name)."""
    return {
        "job_name": f"serviceMonitor/{namespace}/shop/0",
        "static_configs": [{"targets": [target]}],
        "relabel_configs": [
            {"target_label": "namespace", "replacement": namespace},
            {"target_label": "job", "replacement": "shop"},
        ],
    }


def _rules(workdir: Path, namespace: str) -> Path:
    path = workdir / f"{namespace}-shop.yml"
    groups = rules_file(
        parse_spec({}).monitoring.alerts,
        selector={"namespace": namespace, "job": "shop"},
        alert_labels={"promdemo": "shop"},
    )
    path.write_text(yaml.safe_dump(groups))
    return path


def _order_buckets(app_url: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    text = httpx.get(f"{app_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "http_request_latency_seconds_bucket" and s.labels["route"] == "/order":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return buckets


def _send_orders(app_url: str) -> Counter[int]:
    with (
        httpx.Client(timeout=30) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):

        def order(i: int) -> int:
            body = {"order_id": i + 1, "user_id": i % 5, "amount": 1}
            return client.post(f"{app_url}/order", json=body).status_code

        return Counter(pool.map(order, range(ORDERS)))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("promapi")
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}"
    dead_target = f"127.0.0.1:{free_port()}"  # nothing listens there
    app = ManagedProcess(
        python_module("promdemo_app", "--host", "127.0.0.1", "--port", str(app_port)),
        log_path=workdir / "app.log",
        env=APP_ENV,
    )
    with app:
        wait_http_ok(f"{app_url}/healthz", proc=app, timeout=30)
        prom_port = free_port()
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "1s",
            },
            "rule_files": [str(_rules(workdir, "demo")), str(_rules(workdir, "other"))],
            "scrape_configs": [
                _scrape_job("demo", f"127.0.0.1:{app_port}"),
                _scrape_job("other", dead_target),
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        prom = ManagedProcess(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            log_path=workdir / "prometheus.log",
        )
        with prom:
            url = f"http://127.0.0.1:{prom_port}"
            wait_http_ok(f"{url}/-/ready", proc=prom, timeout=30)

            def scraped_zeros() -> bool:  # a scrape of the all-zero counters before any order
                q = 'orders_total{namespace="demo"}'
                body = httpx.get(f"{url}/api/v1/query", params={"query": q}, timeout=5).json()
                return bool(body["data"]["result"])

            wait_until(scraped_zeros, timeout=30, what="the first scrape of the app")
            statuses = _send_orders(app_url)
            assert sum(statuses.values()) == ORDERS
            yield Env(url, statuses, _order_buckets(app_url), dead_target)


def health_when(
    env: Env, namespace: str, done: Callable[[PromDemoHealth], object], what: str
) -> PromDemoHealth:
    """Poll snapshots (through the module) until `done(health)`; return that health."""
    seen: list[PromDemoHealth] = []

    async def one() -> PromDemoHealth:
        async with PrometheusAPI(env.url, timeout=5) as api:
            return (await api.snapshot()).for_promdemo(namespace, "shop")

    def check() -> bool:
        seen.append(asyncio.run(one()))
        return bool(done(seen[-1]))

    try:
        wait_until(check, timeout=40, interval=0.5, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last: {seen[-1] if seen else None}") from exc
    return seen[-1]


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's interpolation within the bucket that holds rank q * count."""
    bounds = sorted(buckets)
    total = buckets[math.inf]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    raise AssertionError("no bucket holds the rank")


# --------------------------------------------------------------------------- the app PromDemo


def test_targets_up_rules_loaded_and_lesson_numbers(env: Env) -> None:
    success = env.statuses[200]
    health = health_when(
        env,
        "demo",
        lambda h: (
            h.lessons is not None
            and h.lessons.success_ratio is not None
            and h.lessons.success_ratio == pytest.approx(success / ORDERS, rel=1e-9)
        ),
        "the recorded success ratio of the whole burst",
    )
    assert health.errors == {}
    assert health.targets is not None
    assert (health.targets.up, health.targets.total) == (1, 1)
    assert health.targets.last_error is None
    assert health.targets.as_status() == {"up": 1, "total": 1}

    assert health.rules is not None
    assert health.rules.loaded
    assert sorted(g.name for g in health.rules.groups) == sorted([RECORDING_GROUP, ALERTING_GROUP])
    assert all(g.file.endswith("demo-shop.yml") for g in health.rules.groups)
    assert health.rules.last_error is None
    assert health.rules.evaluation_interval == 1.0

    lessons = health.lessons
    assert lessons is not None
    assert lessons.p95_seconds == pytest.approx(histogram_quantile(0.95, env.buckets), rel=1e-9)
    # rate() over 5m of counters that were 0 at their first sample inside the window:
    # the count over 300 s, extrapolated at the end only, by at most 1.1 scrape
    # intervals, over a sampled span of at least one interval (a scrape before the load)
    assert lessons.request_rate is not None
    assert ORDERS / WINDOW_SECONDS <= lessons.request_rate <= 2.1 * ORDERS / WINDOW_SECONDS
    assert set(lessons.as_status()) == {"p95Seconds", "successRatio", "requestsPerSecond"}


def test_alerts_of_its_own_rules_only(env: Env) -> None:
    # NoSuccessOrders: fewer than 100 successes in 30m, pending for its `for: 5m`
    health = health_when(
        env,
        "demo",
        lambda h: h.rules is not None and any(a.name == "NoSuccessOrders" for a in h.rules.alerts),
        "NoSuccessOrders to be active",
    )
    assert health.rules is not None
    alert = next(a for a in health.rules.alerts if a.name == "NoSuccessOrders")
    assert alert.state == "pending"
    assert alert.labels["namespace"] == "demo"
    assert alert.labels["promdemo"] == "shop"
    assert all(a.labels.get("namespace") == "demo" for a in health.rules.alerts)


# --------------------------------------------------------------------------- the other PromDemos


def test_a_target_that_cannot_be_scraped(env: Env) -> None:
    health = health_when(
        env, "other", lambda h: h.targets is not None and h.targets.last_error, "a scrape error"
    )
    assert health.targets is not None
    assert (health.targets.up, health.targets.total) == (0, 1)
    assert "connection refused" in (health.targets.last_error or "")
    assert env.dead_target in (health.targets.last_error_target or "")
    assert health.targets.as_status()["lastError"] == health.targets.last_error
    # its rules are loaded and evaluate fine on no data; there are no numbers to read;
    # the only alert that may be active is the one about the failing scrape (up == 0)
    assert health.rules is not None
    assert health.rules.loaded
    assert all(g.file.endswith("other-shop.yml") for g in health.rules.groups)
    assert {a.name for a in health.rules.alerts} <= {"OrderServiceDown"}
    assert health.lessons is not None
    assert health.lessons.empty


def test_a_promdemo_prometheus_knows_nothing_about(env: Env) -> None:
    async def one() -> PromDemoHealth:
        async with PrometheusAPI(env.url) as api:
            return (await api.snapshot()).for_promdemo("nowhere", "shop")

    health = asyncio.run(one())
    assert health.targets is not None
    assert health.targets.total == 0
    assert health.rules is not None
    assert not health.rules.loaded
    assert health.rules.missing == (RECORDING_GROUP, ALERTING_GROUP)
    assert health.lessons is not None
    assert health.lessons.empty


# --------------------------------------------------------------------------- cost and bounds


def test_one_call_of_each_kind_serves_every_promdemo(env: Env) -> None:
    paths: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        paths[request.url.path] += 1

    async def many() -> list[PromDemoHealth]:
        async with httpx.AsyncClient(event_hooks={"request": [count]}) as client:
            cache = SnapshotCache(PrometheusAPI(env.url, client=client), interval=3600)
            asks = [cache.for_promdemo(ns, "shop") for ns in ("demo", "other", "nowhere") * 34]
            return await asyncio.gather(*asks)

    answers = asyncio.run(many())
    assert len(answers) == 102
    assert paths == {"/api/v1/targets": 1, "/api/v1/rules": 1, "/api/v1/query": 1}
    assert answers[0].targets is not None
    assert answers[0].targets.total == 1


def test_a_body_over_the_bound_is_an_error_not_a_read(env: Env) -> None:
    async def small() -> None:
        async with PrometheusAPI(env.url, max_body_bytes=200) as api:
            snapshot = await api.snapshot()
            assert "exceeds 200 bytes" in snapshot.errors["rules"]
            assert snapshot.rules is None
            health = snapshot.for_promdemo("demo", "shop")
            assert health.rules is None
            assert "exceeds" in health.errors["rules"]
            with pytest.raises(PromAPIError, match="exceeds 200 bytes"):
                await api.rules()

    asyncio.run(small())


def test_a_bad_query_is_prometheus_error_text(env: Env) -> None:
    async def bad() -> None:
        async with PrometheusAPI(env.url) as api:
            with pytest.raises(PromAPIError, match=r"HTTP 400: .*parse error"):
                await api.query("rate(up[5m]")

    asyncio.run(bad())


def test_an_unreachable_prometheus_is_one_error_per_part() -> None:
    async def nobody() -> None:
        async with PrometheusAPI(f"http://127.0.0.1:{free_port()}", timeout=5) as api:
            snapshot = await api.snapshot()
            assert set(snapshot.errors) == {"targets", "rules", "lessons"}
            assert "ConnectError" in snapshot.errors["targets"]

    asyncio.run(nobody())
