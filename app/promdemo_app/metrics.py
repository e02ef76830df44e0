"""The order service's Prometheus metrics: names, types, labels and buckets.

They are the app's contract (docs/architecture.md, "The app's contract"): the lessons' PromQL,
the PrometheusRule and the operator's healing read these exact names. Every
labelled series is created at start-up with value 0, because a series born at
its first increment makes `rate()`/`increase()` undercount.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

HTTP_LATENCY_BUCKETS = (0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
ORDER_PROCESSING_BUCKETS = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
DEPENDENCY_CALL_BUCKETS = (0.05, 0.1, 0.3, 0.5, 1.0, 2.0)

ORDER_RESULTS = ("success", "failed")
FAILURE_REASONS = ("out_of_stock", "dependency_error")


class Recorder(Protocol):
    """What the service reports; `Metrics` records it, `NullRecorder` drops it."""

    enabled: bool

    def request_started(self, route: str) -> None: ...
    def request_finished(self, method: str, route: str, status: str, seconds: float) -> None: ...
    def order_succeeded(self, seconds: float) -> None: ...
    def order_failed(self, reason: str, seconds: float) -> None: ...
    def dependency_called(self, seconds: float, ok: bool) -> None: ...
    def inventory_changed(self, level: int) -> None: ...
    def inventory_reset(self) -> None: ...


class NullRecorder:
    """Records nothing: `PROMDEMO_METRICS=off`, so the benchmark can price the metrics."""

    enabled = False

    def request_started(self, route: str) -> None:
        pass

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
    app can answer, so each exists at 0 from start-up.
    """

    enabled = True

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        routes: Iterable[str],
        http_series: Iterable[tuple[str, str, str]],
        initial_inventory: int,
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
        self._in_progress = {r: self.http_requests_in_progress.labels(r) for r in routes}
        self._requests = {key: self.http_requests.labels(*key) for key in http_series}
        self._orders = {result: self.orders.labels(result) for result in ORDER_RESULTS}
        self._failures = {reason: self.order_failures.labels(reason) for reason in FAILURE_REASONS}
        self.product_inventory.set(initial_inventory)

    def request_started(self, route: str) -> None:
        child = self._in_progress.get(route) or self.http_requests_in_progress.labels(route)
        child.inc()

    def request_finished(self, method: str, route: str, status: str, seconds: float) -> None:
        in_progress = self._in_progress.get(route) or self.http_requests_in_progress.labels(route)
        in_progress.dec()
        key = (method, route, status)
        # A status outside the pre-created set (a bug) is still counted, truthfully.
        (self._requests.get(key) or self.http_requests.labels(*key)).inc()
        latency = self._latency.get(route) or self.http_request_latency.labels(route)
        latency.observe(seconds)

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
