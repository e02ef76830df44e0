#!/usr/bin/env python3
"""Write the promdemo Grafana dashboard and the ConfigMap that carries it.

    python scripts/grafana_dashboard.py     # writes both files below

- operator/promdemo_operator/data/dashboard.json: the dashboard (package data of promdemo_operator);
- manifests/grafana/configmap.yaml: the same JSON in a ConfigMap labelled
  `grafana_dashboard: "1"`, which kube-prometheus-stack's Grafana sidecar loads.

The panels are the lessons of docs/lessons.md plus the alerts' state (ALERTS).
Every query uses `$job` (a dashboard variable); tests/integration/test_lessons.py
runs each against a real Prometheus, and tests/unit/test_rules_dashboard.py checks
that both files equal what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "operator" / "promdemo_operator" / "data" / "dashboard.json"
CONFIGMAP = ROOT / "manifests" / "grafana" / "configmap.yaml"
CONFIGMAP_KEY = "promdemo.json"
DS = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(expr, legend)], width, panel type)
PANELS: list[tuple[str, str, list[tuple[str, str]], int, str]] = [
    (
        "Request rate by route (req/s)",
        "reqps",
        [('sum by (route) (rate(http_requests_total{job="$job"}[5m]))', "{{route}}")],
        12,
        "timeseries",
    ),
    (
        "Latency histogram: rate of each bucket",
        "reqps",
        [
            (
                'sum by (le) (rate(http_request_latency_seconds_bucket{job="$job"}[5m]))',
                "le={{le}}",
            )
        ],
        12,
        "timeseries",
    ),
    (
        "Latency p95 and p50 (histogram_quantile)",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le) "
                '(rate(http_request_latency_seconds_bucket{job="$job"}[5m])))',
                "p95",
            ),
            (
                "histogram_quantile(0.5, sum by (le) "
                '(rate(http_request_latency_seconds_bucket{job="$job"}[5m])))',
                "p50",
            ),
        ],
        12,
        "timeseries",
    ),
    (
        "Average latency: rate(sum) / rate(count)",
        "s",
        [
            (
                'sum(rate(http_request_latency_seconds_sum{job="$job"}[5m]))'
                ' / sum(rate(http_request_latency_seconds_count{job="$job"}[5m]))',
                "average",
            )
        ],
        12,
        "timeseries",
    ),
    (
        "Order success ratio",
        "percentunit",
        [
            (
                'sum(rate(orders_total{job="$job", result="success"}[5m]))'
                ' / sum(rate(orders_total{job="$job"}[5m]))',
                "success ratio",
            )
        ],
        8,
        "timeseries",
    ),
    (
        "Failed orders by reason (per s)",
        "reqps",
        [('sum by (reason) (rate(order_failures_total{job="$job"}[5m]))', "{{reason}}")],
        8,
        "timeseries",
    ),
    (
        "Successful orders in 30m (NoSuccessOrders fires below 100 for 5m)",
        "short",
        [('increase(orders_total{job="$job", result="success"}[30m])', "{{instance}}")],
        8,
        "timeseries",
    ),
    (
        "Peak concurrency: max_over_time(in progress[1m])",
        "short",
        [('max_over_time(http_requests_in_progress{job="$job"}[1m])', "{{instance}} {{route}}")],
        12,
        "timeseries",
    ),
    (
        "Inventory per pod (InventoryNegative below 0)",
        "short",
        [('product_inventory{job="$job"}', "{{instance}}")],
        12,
        "timeseries",
    ),
    (
        "Dependency: p95 call time and errors",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le) "
                '(rate(dependency_call_seconds_bucket{job="$job"}[5m])))',
                "p95 call time (s)",
            ),
            ('sum(rate(dependency_errors_total{job="$job"}[5m]))', "errors per s"),
        ],
        12,
        "timeseries",
    ),
    (
        "Inventory resets in 5m (healing)",
        "short",
        [('sum by (instance) (increase(inventory_resets_total{job="$job"}[5m]))', "{{instance}}")],
        12,
        "timeseries",
    ),
    (
        "Alerts: pending and firing (ALERTS)",
        "short",
        [('sum by (alertname, alertstate) (ALERTS{job="$job"})', "{{alertname}} {{alertstate}}")],
        24,
        "state-timeline",
    ),
]


def dashboard() -> dict[str, Any]:
    panels = []
    x = y = 0
    row_height = 8
    for panel_id, (title, unit, targets, width, kind) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + row_height
        panels.append(
            {
                "id": panel_id,
                "type": kind,
                "title": title,
                "datasource": DS,
                "gridPos": {"x": x, "y": y, "w": width, "h": row_height},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        x += width
    return {
        "uid": "promdemo-lessons",
        "title": "promdemo: Prometheus lessons",
        "description": "The order service's metrics as taught in docs/lessons.md, and its alerts.",
        "tags": ["promdemo", "prometheus-lessons"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": "label_values(product_inventory, job)", "refId": "job"},
                    "definition": "label_values(product_inventory, job)",
                    "refresh": 2,
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def configmap_yaml(dashboard_text: str) -> str:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "promdemo-dashboard",
            "labels": {
                "grafana_dashboard": "1",
                "app.kubernetes.io/name": "promdemo",
                "app.kubernetes.io/component": "dashboard",
            },
        },
        "data": {CONFIGMAP_KEY: dashboard_text},
    }
    header = "# Generated by scripts/grafana_dashboard.py from the same data as\n"
    header += "# operator/promdemo_operator/data/dashboard.json; do not edit by hand.\n"
    return header + yaml.dump(
        configmap, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=1000
    )


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the dashboard JSON) as `|` blocks, readable in the ConfigMap."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def main() -> int:
    text = dashboard_json()
    DASHBOARD.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD.write_text(text)
    CONFIGMAP.parent.mkdir(parents=True, exist_ok=True)
    CONFIGMAP.write_text(configmap_yaml(text))
    sys.stdout.write(f"wrote {DASHBOARD.relative_to(ROOT)} and {CONFIGMAP.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
