"""Every PromQL query of the tutorial, against a real Prometheus scraping a real app.

One environment per module (about 15 s): the order service (oversell on, 30 in
stock, every dependency call 0.7 s, processing 0.5 s, 10% dependency failures),
Prometheus (scrape 1 s, evaluation 1 s) with the rules rules.py renders,
Alertmanager posting to a webhook sink. The test sends 90 orders, 30 at a time,
then evaluates every query at one instant: the timestamp of the last scrape.

Why the expected numbers are exact (tolerances):
- every counter series exists at 0 before the load (the app creates them at
  start-up) and Prometheus scraped that 0 before the first order; so over a
  window longer than the data, `increase()` is exactly the load's count (the
  zero point stops the extrapolation at the window's start) and `rate()` is
  that count divided by the window's seconds;
- evaluating at the last scrape's timestamp removes the extrapolation at the end;
- `histogram_quantile()` only uses ratios of bucket rates, which equal ratios of
  bucket counts; the expected quantile is computed from the app's own /metrics
  with Prometheus's interpolation and must also lie within its bucket's bounds;
- a gauge is sampled once per scrape: the concurrency peak seen is at most the
  load's concurrency, and at least 80% of it (the first 30 orders overlap for
  ~1.2 s, longer than the 1 s scrape interval);
- `delta()` of a gauge is extrapolated at the window's start by half a scrape
  interval: the expected value is computed from the raw samples.

The docs' ```promql blocks (docs/lessons.md, docs/lessons.zh.md) are the keys
of LESSONS: a block without a check here fails `test_every_promql_block_is_checked`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from promdemo_operator.rules import rules_file
from promdemo_operator.spec import parse_spec
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, python_module, wait_http_ok, wait_until
from tests.support.prometheus import Prometheus, WebhookSink, run_alertmanager, run_prometheus

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "lessons.md", ROOT / "docs" / "lessons.zh.md"]
DASHBOARD = ROOT / "operator" / "promdemo_operator" / "data" / "dashboard.json"

ORDERS = 90
CONCURRENCY = 30
INITIAL_INVENTORY = 30
APP_ENV = {
    "PROMDEMO_INITIAL_INVENTORY": str(INITIAL_INVENTORY),
    "PROMDEMO_OVERSELL": "true",
    "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.7",
    "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.7",
    "PROMDEMO_PROCESSING_MIN_SECONDS": "0.5",
    "PROMDEMO_PROCESSING_MAX_SECONDS": "0.5",
    "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0.1",
}
SCRAPE_SECONDS = 1.0
REL = 1e-9  # "exact", up to floating point


# ----------------------------------------------------------------- docs' blocks

_BLOCK = re.compile(r"^```promql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def normalize(query: str) -> str:
    return " ".join(query.split())


def doc_blocks(path: Path) -> list[str]:
    return [normalize(b) for b in _BLOCK.findall(path.read_text(encoding="utf-8"))]


# ----------------------------------------------------------------- environment


@dataclass
class Facts:
    """What the load did, from the load's answers and the app's own /metrics."""

    statuses: Counter[int]
    buckets: dict[float, float]  # le -> cumulative count, route /order
    latency_sum: float
    latency_count: float
    inventory: float
    instance: str


@dataclass
class Env:
    prom: Prometheus
    facts: Facts
    at: float  # the timestamp of the last scrape: every query is evaluated there
    webhook: WebhookSink
    checked: set[str] = field(default_factory=set)

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.prom.query(promql, at=self.at)

    def by(self, promql: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(promql)}

    def one(self, promql: str) -> float:
        result = self.query(promql)
        assert len(result) == 1, f"{promql}: {result}"
        return float(result[0]["value"][1])


def _send_orders(url: str) -> Counter[int]:
    with (
        httpx.Client(limits=httpx.Limits(max_connections=CONCURRENCY), timeout=30) as client,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):

        def order(i: int) -> int:
            body = {"order_id": i + 1, "user_id": i % 7, "amount": 1}
            return client.post(f"{url}/order", json=body).status_code

        return Counter(pool.map(order, range(ORDERS)))


def _facts(url: str, statuses: Counter[int], instance: str) -> Facts:
    buckets: dict[float, float] = {}
    latency_sum = latency_count = inventory = math.nan
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("route") == "/order":
                if s.name == "http_request_latency_seconds_bucket":
                    buckets[float(s.labels["le"])] = s.value
                elif s.name == "http_request_latency_seconds_sum":
                    latency_sum = s.value
                elif s.name == "http_request_latency_seconds_count":
                    latency_count = s.value
            if s.name == "product_inventory":
                inventory = s.value
    return Facts(statuses, buckets, latency_sum, latency_count, inventory, instance)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("lessons")
    rules_path = workdir / "rules.yml"
    rules_path.write_text(
        yaml.safe_dump(rules_file(parse_spec({}).monitoring.alerts, selector={"job": "promdemo"}))
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = ManagedProcess(
        python_module("promdemo_app", "--host", "127.0.0.1", "--port", str(port)),
        log_path=workdir / "app.log",
        env=APP_ENV,
    )
    with app:
        # the app listens before anything else picks a free port
        wait_http_ok(f"{url}/healthz", proc=app, timeout=30)
        with (
            WebhookSink() as sink,
            run_alertmanager(workdir, sink.url) as am,
            run_prometheus(
                workdir,
                [f"127.0.0.1:{port}"],
                rule_files=[rules_path],
                alertmanager=am.url,
                scrape_interval="1s",
                evaluation_interval="1s",
            ) as prom,
        ):
            prom.wait_for_scrapes(1)  # a scrape of the all-zero counters before any order
            statuses = _send_orders(url)
            assert sum(statuses.values()) == ORDERS
            assert set(statuses) <= {200, 409, 502}, statuses
            # Prometheus has the final counts, and the rules have seen them
            prom.wait_for("sum(orders_total)", lambda v: v == ORDERS, timeout=20)
            prom.wait_for(
                'count(ALERTS{alertname="InventoryNegative", alertstate="firing"})',
                lambda v: v == 1,
                timeout=20,
            )
            prom.wait_for_scrapes(1)
            at = prom.query_value(f'timestamp(up{{instance="127.0.0.1:{port}"}})')
            assert at is not None
            facts = _facts(url, statuses, f"127.0.0.1:{port}")
            yield Env(prom=prom, facts=facts, at=at, webhook=sink)


# ----------------------------------------------------------------- expectations


def approx(expected: float, rel: float = REL) -> Any:
    return pytest.approx(expected, rel=rel, abs=1e-12)


def histogram_quantile(q: float, buckets: dict[float, float]) -> tuple[float, float, float]:
    """Prometheus's interpolation over cumulative counts: (value, bucket lower, bucket upper)."""
    bounds = sorted(buckets)
    total = buckets[math.inf]
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == math.inf:
                return bounds[-2], bounds[-2], math.inf
            value = lower + (le - lower) * (rank - below) / (buckets[le] - below)
            return value, lower, le
        lower, below = le, buckets[le]
    raise AssertionError("unreachable")


LESSONS: dict[str, Callable[[Env, str], None]] = {}


def lesson(query: str) -> Callable[[Callable[[Env, str], None]], Callable[[Env, str], None]]:
    def register(check: Callable[[Env, str], None]) -> Callable[[Env, str], None]:
        LESSONS[normalize(query)] = check
        return check

    return register


@lesson("rate(http_request_latency_seconds_bucket[5m])")
def _bucket_rates(env: Env, q: str) -> None:
    result = env.query(q)
    order = {
        float(s["metric"]["le"]): float(s["value"][1])
        for s in result
        if s["metric"]["route"] == "/order"
    }
    assert order == {le: approx(count / 300) for le, count in env.facts.buckets.items()}
    others = [float(s["value"][1]) for s in result if s["metric"]["route"] != "/order"]
    assert others
    assert all(v == 0 for v in others)
    values = [order[le] for le in sorted(order)]
    assert values == sorted(values), "cumulative buckets never decrease"


@lesson('rate(http_request_latency_seconds_bucket{le="+Inf"}[5m])')
def _request_rate(env: Env, q: str) -> None:
    assert env.by(q, "route")["/order"] == approx(ORDERS / 300)


def _quantile(q_value: float) -> Callable[[Env, str], None]:
    def check(env: Env, q: str) -> None:
        value, lower, upper = histogram_quantile(q_value, env.facts.buckets)
        got = env.one(q)
        assert got == approx(value)
        assert lower < got <= upper
        # with this load the p95 and the p50 both fall into (1, 2]: the 200s took ~1.2 s
        assert (lower, upper) == (1.0, 2.0)

    return check


lesson("histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))")(
    _quantile(0.95)
)
lesson("histogram_quantile(0.5, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))")(
    _quantile(0.5)
)


@lesson("rate(http_request_latency_seconds_sum[5m]) / rate(http_request_latency_seconds_count[5m])")
def _average_latency(env: Env, q: str) -> None:
    values = env.by(q, "route")
    f = env.facts
    assert values["/order"] == approx(f.latency_sum / f.latency_count)
    assert all(math.isnan(v) for route, v in values.items() if route != "/order"), "0/0 is NaN"


@lesson('sum(rate(orders_total{result="success"}[5m])) / sum(rate(orders_total[5m]))')
def _success_ratio(env: Env, q: str) -> None:
    assert env.one(q) == approx(env.facts.statuses[200] / ORDERS)


@lesson("job:orders:success_ratio_5m")
def _success_ratio_recorded(env: Env, q: str) -> None:
    assert env.one(q) == approx(env.facts.statuses[200] / ORDERS)


@lesson("job:http_request_latency_seconds:p95_5m")
def _p95_recorded(env: Env, q: str) -> None:
    assert env.one(q) == approx(histogram_quantile(0.95, env.facts.buckets)[0])


@lesson("max_over_time(http_requests_in_progress[1m])")
def _peak_concurrency(env: Env, q: str) -> None:
    values = env.by(q, "route")
    assert 0.8 * CONCURRENCY <= values["/order"] <= CONCURRENCY
    assert all(v == 0 for route, v in values.items() if route != "/order")


@lesson("sum by (reason) (increase(order_failures_total[5m]))")
def _failures_by_reason(env: Env, q: str) -> None:
    s = env.facts.statuses
    assert env.by(q, "reason") == {
        "out_of_stock": approx(s[409]),
        "dependency_error": approx(s[502]),
    }


@lesson("product_inventory < 0")
def _negative_inventory(env: Env, q: str) -> None:
    result = env.query(q)
    assert len(result) == 1
    assert result[0]["metric"] == {
        "__name__": "product_inventory",
        "instance": env.facts.instance,
        "job": "promdemo",
    }
    # oversold: every 200 took one unit, also those that passed the check too late
    assert float(result[0]["value"][1]) == INITIAL_INVENTORY - env.facts.statuses[200] < 0


@lesson('increase(orders_total{result="success"}[30m])')
def _increase(env: Env, q: str) -> None:
    assert env.one(q) == approx(env.facts.statuses[200])


@lesson('rate(orders_total{result="success"}[30m])')
def _rate30m(env: Env, q: str) -> None:
    assert env.one(q) == approx(env.facts.statuses[200] / 1800)


def _samples(env: Env, selector: str) -> list[tuple[float, float]]:
    (series,) = env.query(selector)
    return [(float(t), float(v)) for t, v in series["values"]]


@lesson("delta(product_inventory[30m])")
def _delta(env: Env, q: str) -> None:
    samples = _samples(env, "product_inventory[30m]")
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    raw = v1 - v0
    assert raw == env.facts.inventory - INITIAL_INVENTORY
    # the data starts long after the window does: extrapolated by half an interval
    sampled = t1 - t0
    half = sampled / (len(samples) - 1) / 2
    assert env.one(q) == approx(raw * (sampled + half) / sampled)
    assert abs(env.one(q) - raw) <= abs(raw) * (SCRAPE_SECONDS * 0.55) / sampled + 1e-9


@lesson("deriv(product_inventory[30m])")
def _deriv(env: Env, q: str) -> None:
    samples = _samples(env, "product_inventory[30m]")
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    slope = sum((t - mean_t) * (v - mean_v) for t, v in samples) / sum(
        (t - mean_t) ** 2 for t, _ in samples
    )
    got = env.one(q)
    assert got == approx(slope, rel=1e-6)
    assert got < 0


@lesson('increase(orders_total{result="success"}[30m]) < 100')
def _no_success_condition(env: Env, q: str) -> None:
    assert env.facts.statuses[200] < 100
    assert env.one(q) == approx(env.facts.statuses[200])


@lesson('ALERTS{alertname="NoSuccessOrders"}')
def _no_success_pending(env: Env, q: str) -> None:
    (alert,) = env.query(q)
    assert alert["metric"]["alertstate"] == "pending"  # for: 5m has not passed
    # Prometheus's own view: active since the first evaluation with two samples
    (api,) = [a for a in env.prom.alerts() if a["labels"]["alertname"] == "NoSuccessOrders"]
    assert api["state"] == "pending"


@lesson('ALERTS{alertname="InventoryNegative"}')
def _inventory_alert(env: Env, q: str) -> None:
    (alert,) = env.query(q)
    assert alert["metric"] == {
        "__name__": "ALERTS",
        "alertname": "InventoryNegative",
        "alertstate": "firing",  # for: 0s: no pending state
        "instance": env.facts.instance,
        "job": "promdemo",
        "severity": "warning",
    }


# ----------------------------------------------------------------- the tests


def test_every_promql_block_is_checked() -> None:
    """A ```promql block in the tutorial that no check executes fails here."""
    for path in DOCS:
        blocks = doc_blocks(path)
        assert blocks, f"{path} has no ```promql blocks"
        unchecked = [b for b in blocks if b not in LESSONS]
        assert unchecked == [], f"{path.name}: blocks no test executes"


def test_both_languages_teach_the_same_queries() -> None:
    english, chinese = (doc_blocks(p) for p in DOCS)
    assert english == chinese


def test_no_check_without_a_block() -> None:
    blocks = set(doc_blocks(DOCS[0]))
    assert [q for q in LESSONS if q not in blocks] == []


@pytest.mark.integration
@pytest.mark.parametrize("query", list(LESSONS))
def test_lesson_query(env: Env, query: str) -> None:
    before = len(env.prom.executed)
    LESSONS[query](env, query)
    assert query in [normalize(q) for q in env.prom.executed[before:]], "the check must run it"


@pytest.mark.integration
def test_rules_are_loaded_and_healthy(env: Env) -> None:
    rules = env.prom.rules()
    expected = rules_file(parse_spec({}).monitoring.alerts, selector={"job": "promdemo"})
    names = [r.get("record") or r.get("alert") for g in expected["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(names)
    assert {r["name"]: r["health"] for r in rules} == dict.fromkeys(names, "ok")


@pytest.mark.integration
def test_inventory_alert_reaches_alertmanager_with_pod_labels(env: Env) -> None:
    wait_until(lambda: env.webhook.alerts("firing"), timeout=15, what="InventoryNegative webhook")
    firing = env.webhook.alerts("firing")
    alert = next(a for a in firing if a["labels"]["alertname"] == "InventoryNegative")
    assert alert["labels"] == {
        "alertname": "InventoryNegative",
        "instance": env.facts.instance,
        "job": "promdemo",
        "severity": "warning",
    }
    assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
    assert env.facts.instance in alert["annotations"]["summary"]


def _panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


@pytest.mark.integration
@pytest.mark.parametrize(("title", "expr"), _panel_queries(), ids=[t for t, _ in _panel_queries()])
def test_dashboard_panel_returns_data(env: Env, title: str, expr: str) -> None:
    query = expr.replace("$job", "promdemo")
    result = env.query(query)
    assert result, f"panel {title!r}: {query} returned no data"
