"""The operator's own Prometheus metrics (served on --metrics-port, 8080 by default).

Every label has a small, fixed set of values: a reconcile's result, a child's
kind and what was done to it. Names of PromDemos never become labels, so the
series count does not grow with the number of demos.
"""

from __future__ import annotations

import threading

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

RESULTS = ("success", "invalid_spec", "error")
CHILD_KINDS = ("Secret", "Deployment", "Service", "ServiceMonitor", "PrometheusRule")
EVENT_TYPES = ("Normal", "Warning")
CHILD_ACTIONS = ("created", "patched", "unchanged", "deleted", "not_owned")


class OperatorMetrics:
    """The reconcile metrics, registered on one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.reconciles = Counter(
            "promdemo_reconciles_total",
            "Reconciles of a PromDemo, by result: success, invalid_spec (the spec was "
            "rejected; SpecValid=False), error (an API call failed; kopf retries later).",
            ["result"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "promdemo_reconcile_errors_total",
            "Reconciles that failed with an error and will be retried.",
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "promdemo_reconcile_duration_seconds",
            "Wall time of one reconcile of one PromDemo (all its children and its status).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.children = Counter(
            "promdemo_children_applied_total",
            "Children written or checked by reconciles, by kind and action (not_owned: an "
            "existing object this PromDemo does not control, left alone).",
            ["kind", "action"],
            registry=registry,
        )
        self.monitoring_crds = Gauge(
            "promdemo_monitoring_crds_present",
            "1 when the API server serves monitoring.coreos.com/v1 ServiceMonitors and "
            "PrometheusRules, 0 when not (the last time a reconcile looked).",
            registry=registry,
        )
        self.leader = Gauge(
            "promdemo_operator_leader",
            "1 while this operator process acts (runs handlers and heal loops): it holds the "
            "Lease (--leader-elect), or runs without leader election; 0 while it is a standby.",
            registry=registry,
        )
        self.fenced_resets = Counter(
            "promdemo_operator_fenced_requests_total",
            "Requests to pods (resets) not sent because this operator's Lease was no longer "
            "fresh (--leader-elect): a stopped leader waking after its renew deadline.",
            registry=registry,
        )
        self.events_suppressed = Counter(
            "promdemo_operator_events_suppressed_total",
            "Kubernetes Events not posted because their PromDemo had posted too many for the "
            "same reason lately (a burst of 10, then one per 30 s per PromDemo and reason).",
            ["type"],
            registry=registry,
        )
        self.standby_webhook_refused = Counter(
            "promdemo_operator_standby_webhook_refused_total",
            "Alertmanager notifications a standby answered 503 (not the leader; Alertmanager "
            "retries them, on a new connection the Service may send to the leader).",
            registry=registry,
        )
        # Every series exists from the start (value 0), so rate() sees the first increment.
        for result in RESULTS:
            self.reconciles.labels(result=result)
        for event_type in EVENT_TYPES:
            self.events_suppressed.labels(type=event_type)
        for kind in CHILD_KINDS:
            for action in CHILD_ACTIONS:
                self.children.labels(kind=kind, action=action)


_lock = threading.Lock()
_default: OperatorMetrics | None = None


def metrics() -> OperatorMetrics:
    """The process-wide metrics on prometheus_client's default registry (created once)."""
    global _default
    with _lock:
        if _default is None:
            _default = OperatorMetrics()
        return _default


def metrics_app(registry: CollectorRegistry = REGISTRY) -> web.Application:
    """`GET /metrics`: the registry in the format the scraper asks for (text or OpenMetrics).

    Served by `bounded_http` on --metrics-port (prometheus_client's own server runs a
    thread per connection, with no idle timeout: 1,261 threads under a flood once).
    """

    async def serve(request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app
