"""The Grafana dashboard: generated, shipped as package data, and carried by the ConfigMap."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "operator" / "promdemo_operator" / "data" / "dashboard.json"
CONFIGMAP = ROOT / "manifests" / "grafana" / "configmap.yaml"
KUSTOMIZATION = ROOT / "manifests" / "grafana" / "kustomization.yaml"


def _script() -> ModuleType:
    path = ROOT / "scripts" / "grafana_dashboard.py"
    spec = importlib.util.spec_from_file_location("grafana_dashboard", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_configmap_carries_the_same_json() -> None:
    configmap = yaml.safe_load(CONFIGMAP.read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (key,) = configmap["data"]
    assert key.endswith(".json")
    assert json.loads(configmap["data"][key]) == json.loads(DASHBOARD.read_text())


def test_files_are_what_the_generator_writes() -> None:
    script = _script()
    text = script.dashboard_json()
    assert DASHBOARD.read_text() == text, "run python scripts/grafana_dashboard.py"
    assert CONFIGMAP.read_text() == script.configmap_yaml(text)


def test_kustomization_lists_the_configmap() -> None:
    assert yaml.safe_load(KUSTOMIZATION.read_text())["resources"] == ["configmap.yaml"]


def test_dashboard_is_shipped_as_package_data() -> None:
    from importlib.resources import files

    shipped = files("promdemo_operator").joinpath("data/dashboard.json").read_text()
    assert json.loads(shipped) == json.loads(DASHBOARD.read_text())


def test_panels_cover_the_lessons_and_the_alerts() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needle in (
        "histogram_quantile(0.95",
        "http_request_latency_seconds_sum",
        'result="success"',
        "max_over_time(http_requests_in_progress",
        "product_inventory",
        "ALERTS",
        "increase(orders_total",
    ):
        assert needle in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all('job="$job"' in t["expr"] for p in dashboard["panels"] for t in p["targets"])
