"""300 concurrent orders against the real server: the oversell race, and the numbers add up."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

CONCURRENT = 300


def post_order(base_url: str, timeout: float = 120.0) -> tuple[int, dict]:
    """One order on a fresh connection (as the Flask practice demo's curl loop does)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("POST", "/order", headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def burst(base_url: str, n: int = CONCURRENT) -> list[tuple[int, dict]]:
    """`n` orders released at the same moment from `n` threads."""
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[int, dict]:
        barrier.wait(timeout=120)
        return post_order(base_url)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def assert_numbers_add_up(results: list[tuple[int, dict]], metrics: dict, initial: int) -> None:
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 409, 502}, statuses
    assert sum(statuses.values()) == CONCURRENT
    assert sample(metrics, "orders_total", result="success") == statuses[200]
    assert sample(metrics, "orders_total", result="failed") == statuses[409] + statuses[502]
    assert sample(metrics, "order_failures_total", reason="out_of_stock") == statuses[409]
    assert sample(metrics, "order_failures_total", reason="dependency_error") == statuses[502]
    for status in (200, 409, 502):
        labels = {"method": "POST", "route": "/order", "status": str(status)}
        assert sample(metrics, "http_requests_total", **labels) == statuses[status]
    assert sample(metrics, "http_requests_in_progress", route="/order") == 0
    assert sample(metrics, "product_inventory") == initial - statuses[200]


def test_oversell_drives_the_inventory_below_zero(start_app) -> None:
    # The app's defaults, with a slower dependency so that every order of the
    # burst checks the stock before the first one takes a unit, even on a
    # loaded machine.
    _, url = start_app(
        env={"PROMDEMO_DEPENDENCY_MIN_SECONDS": "1.0", "PROMDEMO_DEPENDENCY_MAX_SECONDS": "1.5"}
    )
    results = burst(url)
    metrics = scrape(url)
    assert_numbers_add_up(results, metrics, initial=100)
    assert sample(metrics, "product_inventory") < 0
    assert httpx.get(f"{url}/inventory").json()["inventory"] == sample(metrics, "product_inventory")


def test_atomic_orders_never_go_below_zero(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_OVERSELL": "false"})
    lowest: list[float] = []
    done = threading.Event()

    def watch() -> None:
        # The gauge, scraped while the burst runs.
        while not done.is_set():
            lowest.append(sample(scrape(url), "product_inventory"))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = burst(url)
    finally:
        done.set()
        watcher.join(timeout=60)
    metrics = scrape(url)
    assert_numbers_add_up(results, metrics, initial=100)
    assert lowest
    assert min(lowest) >= 0
    successes = sum(status == 200 for status, _ in results)
    assert successes <= 100


def test_atomic_orders_without_simulation_sell_exactly_the_stock(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_OVERSELL": "false", "PROMDEMO_SIMULATION": "off"})
    results = burst(url)
    metrics = scrape(url)
    assert_numbers_add_up(results, metrics, initial=100)
    assert Counter(status for status, _ in results) == {200: 100, 409: 200}
    assert sample(metrics, "product_inventory") == 0


def test_reset_brings_an_oversold_pod_back(start_app) -> None:
    _, url = start_app(env={"PROMDEMO_INITIAL_INVENTORY": "5", "PROMDEMO_RESET_TOKEN": "t0ken"})
    with ThreadPoolExecutor(max_workers=30) as pool:
        list(pool.map(lambda _: post_order(url), range(30)))
    assert httpx.post(f"{url}/inventory/reset").status_code == 401
    response = httpx.post(f"{url}/inventory/reset", headers={"Authorization": "Bearer t0ken"})
    assert response.json() == {"inventory": 5}
    metrics = scrape(url)
    assert sample(metrics, "product_inventory") == 5
    assert sample(metrics, "inventory_resets_total") == 1


def test_a_burst_on_few_threads_is_answered_without_a_log_line_per_request(start_app) -> None:
    # 300 orders on 20 threads: most of them wait for a thread (waitress logged
    # a line for every one of them).
    proc, url = start_app(
        env={
            "PROMDEMO_THREADS": "20",
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.2",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.3",
            "PROMDEMO_PROCESSING_MIN_SECONDS": "0",
            "PROMDEMO_PROCESSING_MAX_SECONDS": "0",
            "PROMDEMO_INITIAL_INVENTORY": "1000",
        }
    )
    before = len(proc.log().splitlines())
    results = burst(url)
    assert len(results) == CONCURRENT
    assert all(status in {200, 502} for status, _ in results), Counter(s for s, _ in results)
    added = proc.log().splitlines()[before:]
    assert len(added) < 10, added
