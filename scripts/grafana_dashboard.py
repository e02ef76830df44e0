#!/usr/bin/env python3
"""Write the promdemo Grafana dashboard and the ConfigMap that carries it.

    python scripts/grafana_dashboard.py     # writes both files below

- operator/promdemo_operator/data/dashboard.json: the dashboard (package data of promdemo_operator);
- manifests/grafana/configmap.yaml: the same JSON in a ConfigMap labelled
  `grafana_dashboard: "1"`, which kube-prometheus-stack's Grafana sidecar loads.

The panels are the lessons of docs/lessons.md plus the alerts' state (ALERTS);
where a recording rule of promdemo_operator.core.rules holds the number, the panel
reads it (by the name core/rules.py exports). Every query selects
`{job="$job", namespace=~"$namespace"}` (dashboard variables; "All" namespaces is
`.*`, which also matches the namespace-less series of `promdemo local`).
tests/integration/test_lessons.py runs each against a real Prometheus, and
tests/unit/project/test_dashboard.py checks that both files equal what this script
writes. How to import it: docs/dashboard.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# the checkout's core/rules.py, also when promdemo is not installed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))
from promdemo_operator.core.rules import (
    RECORD_MEAN_LATENCY,
    RECORD_P50,
    RECORD_P95,
    RECORD_PEAK_IN_PROGRESS,
    RECORD_REQUEST_RATE,
    RECORD_SUCCESS_RATIO,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "operator" / "promdemo_operator" / "data" / "dashboard.json"
CONFIGMAP = ROOT / "manifests" / "grafana" / "configmap.yaml"
CONFIGMAP_KEY = "promdemo.json"
DS = {"type": "prometheus", "uid": "${datasource}"}

#: Every series of one PromDemo: `namespace` is "All" (`.*`, which also matches series
#: without a namespace label, as in `promdemo local`) or one namespace.
SEL = 'job="$job", namespace=~"$namespace"'
RECORD_NOTE = (
    "Read from the recording rule {name} (the PrometheusRule promdemo creates); empty"
    " when spec.monitoring.prometheusRule is off."
)


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    targets: list[tuple[str, str]]  # (expr, legend)
    width: int
    kind: str = "timeseries"
    description: str = ""


PANELS: list[Panel] = [
    Panel(
        "Request rate (req/s)",
        "reqps",
        [
            (f"{RECORD_REQUEST_RATE}{{{SEL}}}", "all routes (recorded)"),
            (f"sum by (route) (rate(http_requests_total{{{SEL}}}[5m]))", "{{route}}"),
        ],
        12,
        description=RECORD_NOTE.format(name=RECORD_REQUEST_RATE) + " By route: computed here.",
    ),
    Panel(
        "Latency histogram: rate of each bucket",
        "reqps",
        [(f"sum by (le) (rate(http_request_latency_seconds_bucket{{{SEL}}}[5m]))", "le={{le}}")],
        12,
        description="Lesson 1: cumulative buckets, so the rates never decrease with le.",
    ),
    Panel(
        "Latency p95 and p50 (histogram_quantile)",
        "s",
        [(f"{RECORD_P95}{{{SEL}}}", "p95"), (f"{RECORD_P50}{{{SEL}}}", "p50")],
        12,
        description=RECORD_NOTE.format(name=f"{RECORD_P95} / {RECORD_P50}")
        + " Interpolated inside the bucket that holds the quantile (lesson 3).",
    ),
    Panel(
        "Average latency: rate(sum) / rate(count)",
        "s",
        [(f"{RECORD_MEAN_LATENCY}{{{SEL}}}", "average")],
        12,
        description=RECORD_NOTE.format(name=RECORD_MEAN_LATENCY),
    ),
    Panel(
        "Order success ratio",
        "percentunit",
        [(f"{RECORD_SUCCESS_RATIO}{{{SEL}}}", "success ratio")],
        8,
        description=RECORD_NOTE.format(name=RECORD_SUCCESS_RATIO),
    ),
    Panel(
        "Failed orders by reason (per s)",
        "cps",
        [(f"sum by (reason) (rate(order_failures_total{{{SEL}}}[5m]))", "{{reason}}")],
        8,
    ),
    Panel(
        "Successful orders in 30m (NoSuccessOrders fires below 100 for 5m)",
        "short",
        [(f'increase(orders_total{{{SEL}, result="success"}}[30m])', "{{instance}}")],
        8,
        description=(
            "The alert-timing article's expression, per target. It goes on reading the samples"
            " scraped before an outage: see the OrderServiceDown alert below."
        ),
    ),
    Panel(
        "Peak concurrency: max_over_time(in progress[1m])",
        "short",
        [(f"{RECORD_PEAK_IN_PROGRESS}{{{SEL}}}", "peak in flight (recorded)")],
        12,
        description=RECORD_NOTE.format(name=RECORD_PEAK_IN_PROGRESS)
        + " A gauge is only seen at scrapes: short peaks between two scrapes are missed.",
    ),
    Panel(
        "Inventory per pod (InventoryNegative below 0)",
        "short",
        [(f"product_inventory{{{SEL}}}", "{{instance}}")],
        12,
    ),
    Panel(
        "Dependency call time p95 (estimate within (1, 2] s)",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(dependency_call_seconds_bucket{{{SEL}}}[5m])))",
                "p95 call time",
            )
        ],
        12,
        description=(
            "dependency_call_seconds has buckets 0.05, 0.1, 0.3, 0.5, 1, 2: no bound between 1"
            " and 2 s, where the p95 of the simulated dependency falls (uniform 0.05-1.5 s:"
            " true p95 1.43 s). histogram_quantile interpolates linearly over (1, 2] and reads"
            " about 1.86 s. No query can recover what the buckets did not record: read the"
            " value as 'between 1 and 2 s'."
        ),
    ),
    Panel(
        "Dependency errors per second",
        "cps",
        [(f"sum(rate(dependency_errors_total{{{SEL}}}[5m]))", "errors per s")],
        12,
    ),
    Panel(
        "Inventory resets in 5m (healing)",
        "short",
        [(f"sum by (instance) (increase(inventory_resets_total{{{SEL}}}[5m]))", "{{instance}}")],
        12,
    ),
    Panel(
        "Alerts: pending and firing (ALERTS)",
        "short",
        [(f"sum by (alertname, alertstate) (ALERTS{{{SEL}}})", "{{alertname}} {{alertstate}}")],
        24,
        kind="state-timeline",
        description=(
            "OrderServiceDown is NoSuccessOrders' companion: it fires when the scrapes fail."
        ),
    ),
]


def dashboard() -> dict[str, Any]:
    panels = []
    x = y = 0
    row_height = 8
    for panel_id, panel in enumerate(PANELS, start=1):
        width = panel.width
        if x + width > 24:
            x, y = 0, y + row_height
        panels.append(
            {
                "id": panel_id,
                "type": panel.kind,
                "title": panel.title,
                "description": panel.description,
                "datasource": DS,
                "gridPos": {"x": x, "y": y, "w": width, "h": row_height},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for i, (expr, legend) in enumerate(panel.targets)
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
                    # the operator's rules aggregate by job and namespace: two PromDemos
                    # of the same name in two namespaces are two services
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DS,
                    "query": {
                        "query": "label_values(product_inventory, namespace)",
                        "refId": "namespace",
                    },
                    "definition": "label_values(product_inventory, namespace)",
                    "refresh": 2,
                    "includeAll": True,
                    # matches series without a namespace label too (promdemo local)
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "hide": 0,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DS,
                    "query": {
                        "query": 'label_values(product_inventory{namespace=~"$namespace"}, job)',
                        "refId": "job",
                    },
                    "definition": 'label_values(product_inventory{namespace=~"$namespace"}, job)',
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
