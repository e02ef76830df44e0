"""The metrics contract (docs/architecture.md): names, types, labels, buckets, series at 0."""

from __future__ import annotations

import random

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from promdemo_app.metrics import NullRecorder
from promdemo_app.settings import Settings
from promdemo_app.web import METHOD_LABELS, create_app, http_series

ROUTES = ["/", "/order", "/inventory", "/inventory/reset", "unmatched"]


def make_app(**overrides: object) -> Flask:
    settings = Settings(**{"simulation": False, **overrides})  # type: ignore[arg-type]
    return create_app(settings, CollectorRegistry())


def families(app: Flask) -> dict[str, Metric]:
    registry = app.extensions["promdemo"].registry
    return {m.name: m for m in registry.collect()}


def samples(app: Flask) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (s.name, tuple(sorted(s.labels.items()))) for m in families(app).values() for s in m.samples
    }


def value(app: Flask, name: str, labels: dict[str, str] | None = None) -> float | None:
    return app.extensions["promdemo"].registry.get_sample_value(name, labels or {})


# (family name as prometheus_client reports it, type, label names, buckets)
CONTRACT = [
    ("http_request_latency_seconds", "histogram", {"route"}, [0.1, 0.3, 0.5, 1, 2, 3, 5]),
    ("http_requests", "counter", {"method", "route", "status"}, None),
    ("http_requests_in_progress", "gauge", {"route"}, None),
    ("orders", "counter", {"result"}, None),
    ("order_failures", "counter", {"reason"}, None),
    ("order_processing_seconds", "histogram", set(), [0.2, 0.5, 1, 2, 3, 5]),
    ("dependency_call_seconds", "histogram", set(), [0.05, 0.1, 0.3, 0.5, 1, 2]),
    ("dependency_errors", "counter", set(), None),
    ("product_inventory", "gauge", set(), None),
    ("inventory_resets", "counter", set(), None),
]


@pytest.mark.parametrize(("name", "kind", "labels", "buckets"), CONTRACT)
def test_metric_matches_the_contract(
    name: str, kind: str, labels: set[str], buckets: list[float] | None
) -> None:
    family = families(make_app())[name]
    assert family.type == kind
    for sample in family.samples:
        assert set(sample.labels) - {"le"} == labels, sample
    if buckets is not None:
        les = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
        assert les == [*buckets, float("inf")]


def test_only_the_contract_metrics_on_a_given_registry() -> None:
    assert set(families(make_app())) == {c[0] for c in CONTRACT}


def test_default_registry_adds_process_metrics() -> None:
    app = create_app(Settings(simulation=False))
    names = {m.name for m in app.extensions["promdemo"].registry.collect()}
    assert "process_resident_memory_bytes" in names
    assert "orders" in names


def test_labelled_series_exist_at_zero_from_start() -> None:
    app = make_app(initial_inventory=42)
    for result in ("success", "failed"):
        assert value(app, "orders_total", {"result": result}) == 0
    for reason in ("out_of_stock", "dependency_error"):
        assert value(app, "order_failures_total", {"reason": reason}) == 0
    for route in ROUTES:
        assert value(app, "http_requests_in_progress", {"route": route}) == 0
        assert value(app, "http_request_latency_seconds_count", {"route": route}) == 0
    for method, route, status in http_series():
        labels = {"method": method, "route": route, "status": status}
        assert value(app, "http_requests_total", labels) == 0, labels
    assert value(app, "product_inventory") == 42
    assert value(app, "inventory_resets_total") == 0
    assert value(app, "dependency_errors_total") == 0


def test_pre_created_series_cover_what_each_route_answers() -> None:
    series = set(http_series())
    assert ("POST", "/order", "200") in series
    assert ("POST", "/order", "409") in series
    assert ("POST", "/order", "502") in series
    assert ("POST", "/inventory/reset", "401") in series
    assert ("POST", "/inventory/reset", "403") in series
    assert ("GET", "/order", "405") in series
    assert ("other", "unmatched", "404") in series
    # Probes and scrapes are not measured at all.
    assert not {s for s in series if s[1] in {"/healthz", "/readyz", "/metrics"}}
    assert {s[0] for s in series} == {*METHOD_LABELS, "other"}


def test_requests_are_counted_by_route_template_and_status() -> None:
    app = make_app()
    client = app.test_client()
    client.post("/order")
    client.get("/order")
    client.get("/no/such/path")
    client.open("/inventory", method="BREW")

    def count(method: str, route: str, status: str) -> float | None:
        labels = {"method": method, "route": route, "status": status}
        return value(app, "http_requests_total", labels)

    assert count("POST", "/order", "200") == 1
    assert count("GET", "/order", "405") == 1
    assert count("GET", "unmatched", "404") == 1
    assert count("other", "/inventory", "405") == 1
    assert value(app, "http_request_latency_seconds_count", {"route": "/order"}) == 2
    assert value(app, "http_requests_in_progress", {"route": "/order"}) == 0
    assert value(app, "orders_total", {"result": "success"}) == 1
    assert value(app, "order_processing_seconds_count") == 1
    assert value(app, "dependency_call_seconds_count") == 1
    assert value(app, "product_inventory") == 99


def test_probes_and_scrapes_are_not_counted() -> None:
    app = make_app()
    client = app.test_client()
    before = samples(app)
    for path in ("/healthz", "/readyz", "/metrics"):
        client.get(path)
        client.post(path)
    total = sum(
        s.value for s in families(app)["http_requests"].samples if s.name.endswith("_total")
    )
    assert total == 0
    assert samples(app) == before


def test_random_paths_and_methods_add_no_series() -> None:
    app = make_app()
    client = app.test_client()
    before = samples(app)
    rng = random.Random(2)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._~%"
    for _ in range(300):
        path = "/q" + "".join(rng.choice(alphabet + "/") for _ in range(rng.randint(0, 30)))
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "X"])
        client.open(path, method=method)
    assert samples(app) == before


def test_metrics_endpoint_serves_the_text_format() -> None:
    response = make_app().test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    assert b"# TYPE orders_total counter" in response.data
    assert b"product_inventory 100.0" in response.data


def test_metrics_off_records_nothing_and_says_so() -> None:
    app = make_app(metrics=False)
    assert isinstance(app.extensions["promdemo"].recorder, NullRecorder)
    client = app.test_client()
    assert client.post("/order").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "PROMDEMO_METRICS=off" in response.get_json()["error"]
    assert families(app) == {}


def test_the_number_of_http_series_is_fixed_and_documented() -> None:
    # docs/app.md ("Metrics") gives this count and how it is made up.
    assert len(http_series()) == 53
    app = make_app()
    assert len(families(app)["http_requests"].samples) == 2 * 53  # _total and _created


def requests_counted(app: Flask) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families(app)["http_requests"].samples
        if s.name.endswith("_total")
    }


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/order",
        "/order/",
        "//order",
        "/ORDER",
        "/order%2F",
        "/inventory",
        "/inventory/",
        "/inventory//reset",
        "/inventory/reset",
        "/inventory/reset/",
        "/healthz/",
        "/metrics/",
        "/x/../order",
        "",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "PURGE"])
def test_the_route_label_is_the_route_flask_served(path: str, method: str) -> None:
    app = make_app()
    before = requests_counted(app)
    response = app.test_client().open("/", method=method, environ_overrides={"PATH_INFO": path})
    after = requests_counted(app)
    changed = {key: after[key] - before[key] for key in after if after[key] != before[key]}
    # Flask answers 404 exactly when no route has this path (`unmatched`); else
    # the route is the path with its leading slashes collapsed, as werkzeug matches.
    route = "unmatched" if response.status_code == 404 else "/" + path.lstrip("/")
    assert route in ROUTES
    assert changed == {
        (method if method != "PURGE" else "other", route, str(response.status_code)): 1
    }
