"""The Prometheus rule groups of promdemo: the lessons' recording rules and the alerts.

`rule_groups(alerts, selector=...)` builds them from the typed, validated
`spec.monitoring.alerts` of a PromDemo (`spec.parse_spec` holds every default
and every check; nothing here repeats them); `core/render.py` puts them into the
PrometheusRule child, and `rules_file(...)` is the same groups as a plain
Prometheus rules file (`promdemo render --rules-file`, `promdemo local`).

Every expression carries the `selector` matchers, so one Prometheus can hold
the rules of several PromDemos: `{"namespace": "shop", "job": "shop"}` under
prometheus-operator (a ServiceMonitor's job label is the Service's name),
`{"job": "promdemo"}` for the plain rules file.

Labels the alerts carry (what a receiver can rely on):

- every alert: `alertname`, `severity`, the `alert_labels` passed in, and the
  labels of the series the expression returns, listed per alert below;
- `InventoryNegative` is per pod and is *not* aggregated: it keeps every label of
  the `product_inventory` series, that is `job` and `instance` (`<host>:<port>` of
  the scraped pod) always, and under prometheus-operator also `namespace`, `pod`,
  `service`, `endpoint` and `container`. The heal loop identifies the pod by
  `namespace` + `pod` when present, else by `instance`;
- `NoSuccessOrders` is the alert-timing article's expression (docs/lessons.md),
  unaggregated: per series of `orders_total{result="success"}`, so it carries
  `job`, `instance`, `result` (and `namespace`/`pod`/... under prometheus-operator);
- `HighLatencyP95`, `LowSuccessRate`, `DependencyErrors` are per service:
  aggregated `by` the selector's keys (always including `job`);
- `OrderServiceDown` is NoSuccessOrders' companion: `up == 0` per target (with
  its labels), or `absent(up{...})` with the selector's labels when Prometheus
  has no target at all. NoSuccessOrders alone misreads an outage: its
  `increase()` keeps the samples scraped before it, then, once they leave the
  window, returns nothing, so the alert *resolves* while the service is still
  down. The companion uses NoSuccessOrders' `for`.

Recording rules follow prometheus.io's `level:metric:operations` convention
(operations newest first; `_total` dropped after `rate()`; a ratio is
`a_per_b:ratio_…`; `_sum`/`_count` divided is `:mean…`), aggregated by the
same keys: the `RECORD_*` names below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.spec import AlertsSpec

RUNBOOK_BASE = "https://github.com/promdemo/promdemo/blob/main/docs/lessons.md"

RECORDING_GROUP = "promdemo.recording"
ALERTING_GROUP = "promdemo.alerts"

#: The recording rules' names (prometheus.io's convention), read by promapi and the dashboard.
RECORD_REQUEST_RATE = "job:http_requests:rate5m"
RECORD_P95 = "job:http_request_latency_seconds:p95_rate5m"
RECORD_P50 = "job:http_request_latency_seconds:p50_rate5m"
RECORD_MEAN_LATENCY = "job:http_request_latency_seconds:mean5m"
RECORD_SUCCESS_RATIO = "job:orders_success_per_orders:ratio_rate5m"
RECORD_PEAK_IN_PROGRESS = "job:http_requests_in_progress:max_over_time1m"
RECORDS = (
    RECORD_REQUEST_RATE,
    RECORD_P95,
    RECORD_P50,
    RECORD_MEAN_LATENCY,
    RECORD_SUCCESS_RATIO,
    RECORD_PEAK_IN_PROGRESS,
)

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _promql_number(value: float) -> str:
    """A threshold as PromQL reads it: `100`, not `100.0`; `0.1`, not `0.1000000001`."""
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _matchers(selector: Mapping[str, str], **extra: str) -> str:
    """`{k="v", ...}`: the extra matchers first (they read as the lesson), then the selector."""
    items = list(extra.items()) + sorted(selector.items())
    for key, _ in items:
        if not _LABEL_NAME.match(key):
            raise ValueError(f"selector: {key!r} is not a Prometheus label name")
    return "{" + ", ".join(f'{k}="{_escape(str(v))}"' for k, v in items) + "}"


def _by(selector: Mapping[str, str], *more: str) -> str:
    keys = ["job", *sorted(k for k in selector if k != "job"), *more]
    return "by (" + ", ".join(keys) + ")"


def recording_rules(selector: Mapping[str, str]) -> list[dict[str, Any]]:
    """The lessons' queries, precomputed over 5m (1m for the concurrency peak)."""
    sel = _matchers(selector)
    by = _by(selector)
    by_le = _by(selector, "le")
    buckets = f"sum {by_le} (rate(http_request_latency_seconds_bucket{sel}[5m]))"
    return [
        {
            "record": RECORD_REQUEST_RATE,
            "expr": f"sum {by} (rate(http_requests_total{sel}[5m]))",
        },
        {
            "record": RECORD_P95,
            "expr": f"histogram_quantile(0.95, {buckets})",
        },
        {
            "record": RECORD_P50,
            "expr": f"histogram_quantile(0.5, {buckets})",
        },
        {
            "record": RECORD_MEAN_LATENCY,
            "expr": (
                f"sum {by} (rate(http_request_latency_seconds_sum{sel}[5m]))"
                f" / sum {by} (rate(http_request_latency_seconds_count{sel}[5m]))"
            ),
        },
        {
            "record": RECORD_SUCCESS_RATIO,
            "expr": (
                f"sum {by} (rate(orders_total{_matchers(selector, result='success')}[5m]))"
                f" / sum {by} (rate(orders_total{sel}[5m]))"
            ),
        },
        {
            "record": RECORD_PEAK_IN_PROGRESS,
            "expr": f"max {by} (max_over_time(http_requests_in_progress{sel}[1m]))",
        },
    ]


def _alert(
    name: str,
    expr: str,
    for_duration: str,
    *,
    severity: str,
    summary: str,
    description: str,
    alert_labels: Mapping[str, str],
) -> dict[str, Any]:
    labels = {"severity": severity, **{k: str(v) for k, v in alert_labels.items()}}
    return {
        "alert": name,
        "expr": expr,
        "for": for_duration,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK_BASE}#runbook-{name.lower()}",
        },
    }


def alerting_rules(
    alerts: AlertsSpec,
    *,
    selector: Mapping[str, str],
    alert_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """InventoryNegative, NoSuccessOrders and its companion OrderServiceDown, HighLatencyP95,
    LowSuccessRate, DependencyErrors."""
    extra = dict(alert_labels or {})
    sel = _matchers(selector)
    success = _matchers(selector, result="success")
    by = _by(selector)
    by_le = _by(selector, "le")

    inv = alerts.inventory_negative
    nso = alerts.no_success_orders
    nso_window = nso.window
    nso_min = _promql_number(nso.min_orders)
    lat = alerts.high_latency_p95
    lat_window = lat.window
    lat_threshold = _promql_number(lat.threshold_seconds)
    low = alerts.low_success_rate
    low_window = low.window
    low_threshold = _promql_number(low.threshold)
    dep = alerts.dependency_errors
    dep_window = dep.window
    dep_rate = _promql_number(dep.rate_per_second)

    return [
        _alert(
            "InventoryNegative",
            f"product_inventory{sel} < 0",
            inv.for_duration,
            severity="warning",
            summary="Inventory of {{ $labels.instance }} is negative: the service oversold.",
            description=(
                "product_inventory of {{ $labels.instance }}"
                "{{ if $labels.pod }} (pod {{ $labels.namespace }}/{{ $labels.pod }}){{ end }}"
                " is {{ $value }}. Concurrent orders passed the stock check before any of"
                " them decremented it. The promdemo operator resets the pod's inventory"
                " when autoHeal is enabled; otherwise POST /inventory/reset to that pod."
            ),
            alert_labels=extra,
        ),
        _alert(
            "NoSuccessOrders",
            f"increase(orders_total{success}[{nso_window}]) < {nso_min}",
            nso.for_duration,
            severity="critical",
            summary=f"Fewer than {nso_min} successful orders in {nso_window}.",
            description=(
                '{{ $labels.instance }} counted {{ $value | printf "%.0f" }} successful'
                f" orders over the last {nso_window} (at least {nso_min} expected), and it"
                " stayed so at every evaluation for the alert's `for`."
            ),
            alert_labels=extra,
        ),
        _alert(
            "OrderServiceDown",
            f"up{sel} == 0 or absent(up{sel})",
            nso.for_duration,
            severity="critical",
            summary=(
                "Prometheus cannot scrape {{ if $labels.instance }}{{ $labels.instance }}"
                "{{ else }}any target of {{ $labels.job }}{{ end }}: NoSuccessOrders is blind."
            ),
            description=(
                "{{ if $labels.instance }}The scrape of {{ $labels.instance }} fails"
                "{{ else }}Prometheus has no target for {{ $labels.job }}{{ end }}, and it"
                " stayed so at every evaluation for the alert's `for`. Without fresh"
                f" orders_total samples, NoSuccessOrders only sees what {nso_window} of"
                " history still holds and resolves once that history has left its window,"
                " although the service is still down."
            ),
            alert_labels=extra,
        ),
        _alert(
            "HighLatencyP95",
            f"histogram_quantile(0.95, sum {by_le} "
            f"(rate(http_request_latency_seconds_bucket{sel}[{lat_window}]))) > {lat_threshold}",
            lat.for_duration,
            severity="warning",
            summary=f"p95 HTTP latency of {{{{ $labels.job }}}} is above {lat_threshold}s.",
            description=(
                f"The 95th percentile of http_request_latency_seconds over {lat_window}"
                " is {{ $value | humanizeDuration }} (estimated from histogram buckets:"
                " the true value lies within the bucket that holds it)."
            ),
            alert_labels=extra,
        ),
        _alert(
            "LowSuccessRate",
            f"sum {by} (rate(orders_total{success}[{low_window}]))"
            f" / sum {by} (rate(orders_total{sel}[{low_window}])) < {low_threshold}",
            low.for_duration,
            severity="warning",
            summary=f"Order success ratio of {{{{ $labels.job }}}} is below {low_threshold}.",
            description=(
                f"Over {low_window}, only {{{{ $value | humanizePercentage }}}} of orders"
                " succeeded. Check order_failures_total by reason: out_of_stock (reset"
                " the inventory) or dependency_error (the dependency is failing)."
            ),
            alert_labels=extra,
        ),
        _alert(
            "DependencyErrors",
            f"sum {by} (rate(dependency_errors_total{sel}[{dep_window}])) > {dep_rate}",
            dep.for_duration,
            severity="warning",
            summary=f"The order dependency of {{{{ $labels.job }}}} fails more than {dep_rate}/s.",
            description=(
                'dependency_errors_total grew by {{ $value | printf "%.2f" }} errors/s'
                f" over {dep_window}."
                " Orders that hit these errors answered 502."
            ),
            alert_labels=extra,
        ),
    ]


def rule_groups(
    alerts: AlertsSpec,
    *,
    selector: Mapping[str, str],
    alert_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The recording and alerting groups for the (validated) `spec.monitoring.alerts`.

    Raises ValueError on a selector key that is not a Prometheus label name.
    """
    return [
        {"name": RECORDING_GROUP, "rules": recording_rules(selector)},
        {
            "name": ALERTING_GROUP,
            "rules": alerting_rules(alerts, selector=selector, alert_labels=alert_labels),
        },
    ]


def rules_file(
    alerts: AlertsSpec,
    *,
    selector: Mapping[str, str],
    alert_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A plain Prometheus rules file (`rule_files:`) holding `rule_groups(...)`."""
    return {"groups": rule_groups(alerts, selector=selector, alert_labels=alert_labels)}
