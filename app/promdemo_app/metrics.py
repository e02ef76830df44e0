"""The order service's Prometheus metrics: names, types, labels and buckets.

They are the app's contract (docs/architecture.md, "The app's contract"): the lessons' PromQL,
the PrometheusRule and the operator's healing read these exact names. Every
labelled series is created at start-up with value 0, because a series born at
its first increment makes `rate()`/`increase()` undercount.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("promdemo_app.metrics")

HTTP_LATENCY_BUCKETS = (0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
ORDER_PROCESSING_BUCKETS = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
DEPENDENCY_CALL_BUCKETS = (0.05, 0.1, 0.3, 0.5, 1.0, 2.0)

ORDER_RESULTS = ("success", "failed")
FAILURE_REASONS = ("out_of_stock", "dependency_error")

# The `route` label of a path no route serves.
UNMATCHED = "unmatched"
# Methods are a label too: anything else a client invents counts as "other".
METHOD_LABELS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    return method if method in METHOD_LABELS else OTHER_METHOD


class Recorder(Protocol):
    """What the service reports; `Metrics` records it, `NullRecorder` drops it."""

    enabled: bool

    def request_finished(self, method: str, route: str, status: str, seconds: float) -> None: ...
    def order_succeeded(self, seconds: float) -> None: ...
    def order_failed(self, reason: str, seconds: float) -> None: ...
    def dependency_called(self, seconds: float, ok: bool) -> None: ...
    def inventory_changed(self, level: int) -> None: ...
    def inventory_reset(self) -> None: ...


class NullRecorder:
    """Records nothing: `PROMDEMO_METRICS=off`, so the benchmark can price the metrics."""

    enabled = False

    def request_finished(self, method: str, route: str, status: str, seconds: float) -> None:
        pass

    def order_succeeded(self, seconds: float) -> None:
        pass

    def order_failed(self, reason: str, seconds: float) -> None:
        pass

    def dependency_called(self, seconds: float, ok: bool) -> None:
        pass

    def inventory_changed(self, level: int) -> None:
        pass

    def inventory_reset(self) -> None:
        pass


class Metrics:
    """The service's metrics, registered on `registry`.

    `routes` are the route templates measured by the `http_*` metrics (including
    the one for unknown paths); `http_series` every (method, route, status) the
    app can answer, so each exists at 0 from start-up, and no other is ever
    created: the number of series is fixed at start-up. `in_progress(route)`
    gives the requests in flight on a route (the gauge reads it when scraped).
    """

    enabled = True

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        routes: Iterable[str],
        http_series: Iterable[tuple[str, str, str]],
        initial_inventory: int,
        in_progress: Callable[[str], float],
    ) -> None:
        self.http_request_latency = Histogram(
            "http_request_latency_seconds",
            "Time to answer a request, by route template (probes and scrapes excluded).",
            ["route"],
            buckets=HTTP_LATENCY_BUCKETS,
            registry=registry,
        )
        self.http_requests = Counter(
            "http_requests_total",
            "Requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_requests_in_progress = Gauge(
            "http_requests_in_progress",
            "Requests being answered right now, by route template.",
            ["route"],
            registry=registry,
        )
        self.orders = Counter(
            "orders_total",
            "Orders finished, by result: success or failed (out of stock or dependency error).",
            ["result"],
            registry=registry,
        )
        self.order_failures = Counter(
            "order_failures_total",
            "Failed orders by reason: out_of_stock (409) or dependency_error (502).",
            ["reason"],
            registry=registry,
        )
        self.order_processing = Histogram(
            "order_processing_seconds",
            "Time to handle one order end to end (stock check, dependency call, "
            "processing), whatever its result.",
            buckets=ORDER_PROCESSING_BUCKETS,
            registry=registry,
        )
        self.dependency_call = Histogram(
            "dependency_call_seconds",
            "Time spent calling the simulated downstream dependency, failed calls included.",
            buckets=DEPENDENCY_CALL_BUCKETS,
            registry=registry,
        )
        self.dependency_errors = Counter(
            "dependency_errors_total",
            "Calls to the simulated downstream dependency that failed.",
            registry=registry,
        )
        self.product_inventory = Gauge(
            "product_inventory",
            "Units in stock in this process (per pod); negative after overselling.",
            registry=registry,
        )
        self.inventory_resets = Counter(
            "inventory_resets_total",
            "Times the inventory was reset to its initial level (POST /inventory/reset).",
            registry=registry,
        )

        # Creating the children is what makes each series exist at 0. They are
        # kept: `.labels()` costs more than the increment it leads to, and these
        # run on every request (bench/bench_app.py measures the difference).
        routes = list(routes)
        self._latency = {r: self.http_request_latency.labels(r) for r in routes}
        self._requests: dict[str, dict[tuple[str, str], Counter]] = {r: {} for r in routes}
        for method, route, status in http_series:
            self._requests[route][method, status] = self.http_requests.labels(method, route, status)
        for route in routes:
            # Read when scraped: no lock taken per request for this gauge.
            self.http_requests_in_progress.labels(route).set_function(partial(in_progress, route))
        self._orders = {result: self.orders.labels(result) for result in ORDER_RESULTS}
        self._failures = {reason: self.order_failures.labels(reason) for reason in FAILURE_REASONS}
        self._unexpected: set[tuple[str, str, str]] = set()
        self.product_inventory.set(initial_inventory)

    def request_finished(self, method: str, route: str, status: str, seconds: float) -> None:
        self._latency[route].observe(seconds)
        counter = self._requests[route].get((method, status))
        if counter is not None:
            counter.inc()
        elif (method, route, status) not in self._unexpected:
            # A status the route is not declared to answer (a bug): creating a
            # series for it would let the number of series grow, so it is
            # left out of http_requests_total and said once.
            self._unexpected.add((method, route, status))
            log.warning(
                "%s %s answered %s, which http_requests_total has no series for; not counted",
                method,
                route,
                status,
            )

    def order_succeeded(self, seconds: float) -> None:
        self._orders["success"].inc()
        self.order_processing.observe(seconds)

    def order_failed(self, reason: str, seconds: float) -> None:
        self._orders["failed"].inc()
        self._failures[reason].inc()
        self.order_processing.observe(seconds)

    def dependency_called(self, seconds: float, ok: bool) -> None:
        self.dependency_call.observe(seconds)
        if not ok:
            self.dependency_errors.inc()

    def inventory_changed(self, level: int) -> None:
        self.product_inventory.set(level)

    def inventory_reset(self) -> None:
        self.inventory_resets.inc()
