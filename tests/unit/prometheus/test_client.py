"""promapi: reading targets, rules and lesson numbers per PromDemo, and the bounded client.

The bodies in tests/unit/data/promapi/ are real answers of Prometheus 2.42 (see its
README); the client is driven through httpx.MockTransport.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from promdemo_operator.core.rules import ALERTING_GROUP, RECORDING_GROUP, recording_rules
from promdemo_operator.prometheus.cache import SnapshotCache
from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import (
    LESSONS_QUERY,
    RECORDED,
    PromAPIError,
    Snapshot,
    evaluation_interval,
    lessons,
    promdemo_selector,
    rules_status,
    targets_status,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "promapi"
DEMO = promdemo_selector("demo", "shop")
OTHER = promdemo_selector("other", "shop")
NOWHERE = promdemo_selector("nowhere", "shop")


def body(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


# --------------------------------------------------------------------------- selectors and names


def test_selector_under_the_operator_and_plain() -> None:
    assert promdemo_selector("demo", "shop") == {"namespace": "demo", "job": "shop"}
    assert promdemo_selector(None, "promdemo") == {"job": "promdemo"}


def test_the_lesson_names_are_what_rules_py_records() -> None:
    recorded = {r["record"] for r in recording_rules({"job": "x"})}
    assert set(RECORDED.values()) <= recorded
    for name in RECORDED.values():
        assert name in LESSONS_QUERY


# --------------------------------------------------------------------------- targets


def test_targets_of_a_scraped_promdemo() -> None:
    status = targets_status(body("targets"), DEMO)
    assert (status.up, status.total, status.last_error) == (1, 1, None)
    assert status.as_status() == {"up": 1, "total": 1}


def test_targets_of_a_promdemo_whose_target_is_down() -> None:
    status = targets_status(body("targets"), OTHER)
    assert (status.up, status.total) == (0, 1)
    assert status.last_error is not None
    assert status.last_error.endswith("connect: connection refused")
    assert status.last_error_target == "http://127.0.0.1:40499/metrics"
    assert status.as_status() == {"up": 0, "total": 1, "lastError": status.last_error}


def test_targets_of_an_unknown_promdemo() -> None:
    assert targets_status(body("targets"), NOWHERE).as_status() == {"up": 0, "total": 0}


def test_the_latest_scrape_error_is_reported() -> None:
    answer = body("targets")
    down = answer["data"]["activeTargets"][1]
    older = {**down, "lastError": "older", "lastScrape": "2000-01-01T00:00:00Z"}
    answer["data"]["activeTargets"].append(older)
    status = targets_status(answer, OTHER)
    assert status.total == 2
    assert "connection refused" in (status.last_error or "")


def test_an_error_answer_is_an_error() -> None:
    with pytest.raises(PromAPIError, match="bad_data: nope"):
        targets_status({"status": "error", "error": "bad_data: nope"}, DEMO)
    with pytest.raises(PromAPIError, match="not a successful"):
        targets_status(["not", "an", "object"], DEMO)


# --------------------------------------------------------------------------- rules


def test_rules_of_each_promdemo_are_told_apart_by_their_matchers() -> None:
    # every PromDemo's groups have the same names; the files differ, and the matchers
    demo = rules_status(body("rules"), DEMO)
    other = rules_status(body("rules"), OTHER)
    assert demo.loaded
    assert other.loaded
    assert {g.file for g in demo.groups} == {"/tmp/selprobe/cap/demo-shop.yml"}
    assert {g.file for g in other.groups} == {"/tmp/selprobe/cap/other-shop.yml"}
    assert sorted(g.name for g in demo.groups) == sorted([RECORDING_GROUP, ALERTING_GROUP])
    assert {g.rules for g in demo.groups} == {5, 6}
    assert demo.last_error is None
    assert demo.evaluation_interval == 1.0


def test_rules_of_an_unknown_promdemo_are_missing() -> None:
    status = rules_status(body("rules"), NOWHERE)
    assert not status.loaded
    assert status.missing == (RECORDING_GROUP, ALERTING_GROUP)
    assert status.evaluation_interval is None


def test_alerts_belong_to_their_promdemo() -> None:
    demo = rules_status(body("rules"), DEMO)
    assert sorted((a.name, a.state) for a in demo.alerts) == [
        ("LowSuccessRate", "pending"),
        ("NoSuccessOrders", "pending"),
    ]
    assert all(a.labels["namespace"] == "demo" for a in demo.alerts)
    assert demo.firing == ()
    assert rules_status(body("rules"), OTHER).alerts == ()


def test_firing_alerts() -> None:
    answer = body("rules")
    for group in answer["data"]["groups"]:
        for rule in group["rules"]:
            for alert in rule.get("alerts", []):
                alert["state"] = "firing"
    assert {a.name for a in rules_status(answer, DEMO).firing} == {
        "LowSuccessRate",
        "NoSuccessOrders",
    }


def test_a_rule_evaluation_error_is_reported() -> None:
    answer = body("rules")
    group = next(
        g
        for g in answer["data"]["groups"]
        if g["name"] == RECORDING_GROUP and g["file"].endswith("demo-shop.yml")
    )
    group["rules"][1]["health"] = "err"
    group["rules"][1]["lastError"] = "many-to-many matching not allowed"
    status = rules_status(answer, DEMO)
    assert status.loaded
    assert status.last_error == (
        "job:http_request_latency_seconds:p95_rate5m: many-to-many matching not allowed"
    )
    assert rules_status(answer, OTHER).last_error is None


def test_a_group_of_the_same_name_from_someone_else_is_not_ours() -> None:
    answer = body("rules")
    foreign = copy.deepcopy(answer["data"]["groups"][0])
    for rule in foreign["rules"]:
        rule["query"] = "vector(1)"
    answer["data"]["groups"] = [foreign]
    assert not rules_status(answer, DEMO).loaded


# --------------------------------------------------------------------------- lessons


def test_lessons_of_the_promdemo_with_data() -> None:
    numbers = lessons(body("lessons"), DEMO)
    assert numbers.p95_seconds == 0.29
    assert numbers.success_ratio == 0.65
    assert numbers.request_rate == 0.14745
    assert numbers.at == 1796169389.921
    assert numbers.as_status() == {
        "p95Seconds": 0.29,
        "successRatio": 0.65,
        "requestsPerSecond": 0.147,
    }


def test_no_lessons_without_data() -> None:
    numbers = lessons(body("lessons"), OTHER)
    assert numbers.empty
    assert numbers.as_status() == {}


def test_nan_before_any_order_reads_as_none() -> None:
    answer = body("lessons")
    for sample in answer["data"]["result"]:
        if sample["metric"]["__name__"] != RECORDED["request_rate"]:
            sample["value"][1] = "NaN"
    numbers = lessons(answer, DEMO)
    assert numbers.p95_seconds is None
    assert numbers.success_ratio is None
    assert numbers.request_rate == 0.14745


def test_lessons_need_an_instant_vector() -> None:
    with pytest.raises(PromAPIError, match="instant vector"):
        lessons({"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}, DEMO)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_answers_for_each_promdemo() -> None:
    snapshot = Snapshot(body("targets"), body("rules"), body("lessons"))
    demo = snapshot.for_promdemo("demo", "shop")
    assert demo.targets is not None
    assert demo.targets.up == 1
    assert demo.rules is not None
    assert demo.rules.loaded
    assert demo.lessons is not None
    assert demo.lessons.success_ratio == 0.65
    other = snapshot.for_promdemo("other", "shop")
    assert other.targets is not None
    assert other.targets.up == 0
    assert demo.errors == {}


def test_snapshot_with_a_failed_part() -> None:
    snapshot = Snapshot(body("targets"), None, body("lessons"), errors={"rules": "HTTP 503"})
    health = snapshot.for_promdemo("demo", "shop")
    assert health.rules is None
    assert health.errors == {"rules": "HTTP 503"}
    assert health.targets is not None


# --------------------------------------------------------------------------- client

Handler = Callable[[httpx.Request], Any]


def api(handler: Handler, **kwargs: Any) -> PrometheusAPI:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PrometheusAPI(kwargs.pop("base_url", "http://prom.test"), client=client, **kwargs)


def answering(seen: list[httpx.Request] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        name = {"/targets": "targets", "/rules": "rules", "/query": "lessons"}
        for suffix, file in name.items():
            if request.url.path.endswith(suffix):
                return httpx.Response(200, json=body(file))
        return httpx.Response(404, text="404 page not found")

    return handler


def test_snapshot_is_three_calls_and_reads_active_targets_only() -> None:
    seen: list[httpx.Request] = []

    async def main() -> Snapshot:
        return await api(answering(seen)).snapshot()

    snapshot = asyncio.run(main())
    assert snapshot.errors == {}
    assert sorted(r.url.path for r in seen) == ["/api/v1/query", "/api/v1/rules", "/api/v1/targets"]
    by_path = {r.url.path: r for r in seen}
    assert by_path["/api/v1/targets"].url.params["state"] == "active"
    assert by_path["/api/v1/query"].url.params["query"] == LESSONS_QUERY


def test_a_base_url_with_a_path_such_as_the_api_server_proxy() -> None:
    seen: list[httpx.Request] = []
    proxy = "https://kube.test/api/v1/namespaces/monitoring/services/prometheus-operated:web/proxy/"

    async def main() -> None:
        await api(answering(seen), base_url=proxy).rules()

    asyncio.run(main())
    assert str(seen[0].url) == proxy.rstrip("/") + "/api/v1/rules"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(
                400, json={"status": "error", "errorType": "bad_data", "error": "parse"}
            ),
            "HTTP 400: parse",
        ),
        (httpx.Response(503, text="<html>Service Unavailable</html>"), "HTTP 503"),
        (httpx.Response(200, text="not json"), "HTTP 200"),
        (httpx.Response(200, json={"status": "error", "error": "boom"}), "boom"),
    ],
)
def test_answers_that_are_not_a_successful_api_response(
    response: httpx.Response, message: str
) -> None:
    async def main() -> None:
        await api(lambda _: response).rules()

    with pytest.raises(PromAPIError, match=message):
        asyncio.run(main())


def test_a_body_over_the_bound_by_its_length_header() -> None:
    big = httpx.Response(200, content=b"x" * 5000)

    async def main() -> None:
        await api(lambda _: big, max_body_bytes=1000).rules()

    with pytest.raises(PromAPIError, match="body of 5000 bytes exceeds 1000"):
        asyncio.run(main())


def test_a_streamed_body_over_the_bound_stops_being_read() -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):  # 1 MB if read to the end
            sent.append(1)
            yield b"x" * 1000

    async def main() -> None:
        await api(lambda _: httpx.Response(200, content=chunks()), max_body_bytes=10_000).rules()

    with pytest.raises(PromAPIError, match="body exceeds 10000 bytes"):
        asyncio.run(main())
    assert len(sent) <= 11


def test_a_hanging_prometheus_times_out() -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    async def main() -> None:
        await api(hang, timeout=0.05).targets()

    with pytest.raises(PromAPIError, match=r"no answer within 0\.05s"):
        asyncio.run(main())


def test_a_failing_part_leaves_the_others() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/rules"):
            return httpx.Response(500, text="oops")
        return answering()(request)

    async def main() -> Snapshot:
        return await api(handler).snapshot()

    snapshot = asyncio.run(main())
    assert snapshot.errors == {"rules": "/api/v1/rules: HTTP 500"}
    assert snapshot.targets is not None
    assert snapshot.for_promdemo("demo", "shop").lessons is not None


# --------------------------------------------------------------------------- cache (the cost rule)


def test_cache_fetches_once_per_interval_for_every_caller() -> None:
    seen: list[httpx.Request] = []
    now = [100.0]

    async def main() -> None:
        cache = SnapshotCache(api(answering(seen)), interval=10, clock=lambda: now[0])
        asks = [cache.for_promdemo(ns, "shop") for ns in ("demo", "other") * 50]
        answers = await asyncio.gather(*asks)  # 100 PromDemos at once: one fetch
        assert len(answers) == 100
        assert Counter(r.url.path for r in seen) == {
            "/api/v1/targets": 1,
            "/api/v1/rules": 1,
            "/api/v1/query": 1,
        }
        now[0] += 9.9
        await cache.get()
        assert len(seen) == 3  # still fresh
        now[0] += 0.1
        await cache.get()
        assert len(seen) == 6  # one interval later: one more round

    asyncio.run(main())


def test_cache_says_when_its_snapshot_is_due() -> None:
    now = [100.0]

    async def main() -> None:
        cache = SnapshotCache(api(answering()), interval=10, clock=lambda: now[0])
        assert cache.due_in() == 0  # nothing yet: ask now
        await cache.get()
        now[0] += 4
        assert cache.due_in() == pytest.approx(6)
        now[0] += 7
        assert cache.due_in() == 0

    asyncio.run(main())


def test_the_evaluation_interval_is_the_longest_of_the_promdemo_groups() -> None:
    rules = body("rules")
    assert evaluation_interval(rules) == 1
    slower = copy.deepcopy(rules)
    slower["data"]["groups"][0]["interval"] = 30
    slower["data"]["groups"].append({"name": "other", "interval": 300, "rules": []})
    assert evaluation_interval(slower) == 30  # groups of others do not count
    assert evaluation_interval({"status": "success", "data": {"groups": []}}) is None


def test_cache_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SnapshotCache(api(answering()), interval=0)
