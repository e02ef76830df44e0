"""The operator's own metrics about healing.

Label values are bounded: `namespace` and `promdemo` come from the PromDemo
objects (one series set per PromDemo, dropped with `forget`), `reason` and
`outcome` from the fixed tuples below. Pod names are never labels: pods come
and go, and their per-pod inventory is in the PromDemo's status instead.
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Why a pod's value could not be read. `too_large`: the page (decoded) went over the
# read cap; `garbage`: not a valid exposition or no usable value (NaN, duplicates, ...);
# `wrong_pod`: another pod answered at the pod's address (its X-Promdemo-Pod-Uid).
SCRAPE_REASONS = (
    "unreachable",
    "timeout",
    "http_status",
    "garbage",
    "missing",
    "too_large",
    "wrong_pod",
)
# Why a reset did not complete (or could not be confirmed). `wrong_pod`: the pod at the
# address refused it (409) as meant for another pod; nothing was reset.
RESET_REASONS = ("unreachable", "timeout", "http_status", "garbage", "too_large", "wrong_pod")
# Calls to the Kubernetes API made by the heal loop.
# (pods and the reset token come from watches: the loop only writes)
API_OPERATIONS = ("patch_status", "post_event", "other")
# What an Alertmanager notification led to, per alert.
WEBHOOK_OUTCOMES = (
    "reset",
    "recovered",
    "cooldown",
    "resolved",
    "ignored",
    "unknown_target",
    "ambiguous",
    "failed",
    "wrong_pod",
)
SOURCES = ("direct", "alertmanager")

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class HealMetrics:
    """Every heal metric, registered in one registry (the default one in the operator)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        self.resets = Counter(
            "promdemo_inventory_resets_total",
            "Inventory resets the pods accepted (answered 2xx), per PromDemo; those whose answer "
            "was unusable are also in promdemo_heal_reset_failures_total.",
            ["namespace", "promdemo"],
            registry=registry,
        )
        self.latency = Histogram(
            "promdemo_heal_latency_seconds",
            "Time from the first observation of a pod's inventory below the threshold "
            "to the confirmed reset of that pod.",
            ["namespace", "promdemo", "source"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.scrape_failures = Counter(
            "promdemo_heal_scrape_failures_total",
            "Checks that could not read a pod's product_inventory, by reason "
            "(unreachable, timeout, http_status, garbage, missing, too_large, wrong_pod).",
            ["namespace", "promdemo", "reason"],
            registry=registry,
        )
        self.reset_failures = Counter(
            "promdemo_heal_reset_failures_total",
            "Reset requests that failed or could not be confirmed, by reason.",
            ["namespace", "promdemo", "reason"],
            registry=registry,
        )
        self.api_errors = Counter(
            "promdemo_heal_api_errors_total",
            "Kubernetes API calls of the heal loop that failed, by operation.",
            ["namespace", "promdemo", "operation"],
            registry=registry,
        )
        self.checks = Counter(
            "promdemo_heal_checks_total",
            "Heal checks run (one per interval per PromDemo in the direct mode).",
            ["namespace", "promdemo"],
            registry=registry,
        )
        self.lowest = Gauge(
            "promdemo_heal_lowest_inventory",
            "The lowest product_inventory among the pods at the last check.",
            ["namespace", "promdemo"],
            registry=registry,
        )
        self.notifications = Counter(
            "promdemo_alertmanager_alerts_total",
            "Alerts received on the Alertmanager webhook, by what they led to.",
            ["outcome"],
            registry=registry,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.notifications.labels(outcome)

    def touch(self, namespace: str, promdemo: str) -> None:
        """Create every labelled series of a PromDemo at 0 (so rate() does not undercount)."""
        self.resets.labels(namespace, promdemo)
        self.checks.labels(namespace, promdemo)
        for reason in SCRAPE_REASONS:
            self.scrape_failures.labels(namespace, promdemo, reason)
        for reason in RESET_REASONS:
            self.reset_failures.labels(namespace, promdemo, reason)
        for op in API_OPERATIONS:
            self.api_errors.labels(namespace, promdemo, op)

    def forget(self, namespace: str, promdemo: str) -> None:
        """Drop a deleted PromDemo's series."""
        pairs = [
            (self.resets, [()]),
            (self.checks, [()]),
            (self.lowest, [()]),
            (self.scrape_failures, [(r,) for r in SCRAPE_REASONS]),
            (self.reset_failures, [(r,) for r in RESET_REASONS]),
            (self.api_errors, [(o,) for o in API_OPERATIONS]),
            (self.latency, [(s,) for s in SOURCES]),
        ]
        for metric, suffixes in pairs:
            for suffix in suffixes:
                with contextlib.suppress(KeyError):
                    metric.remove(namespace, promdemo, *suffix)

    def api_error(self, namespace: str, promdemo: str, operation: str) -> None:
        op = operation if operation in API_OPERATIONS else "other"
        self.api_errors.labels(namespace, promdemo, op).inc()


_default: HealMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> HealMetrics:
    """The process-wide instance in prometheus_client's default registry (created once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HealMetrics(REGISTRY)
        return _default
