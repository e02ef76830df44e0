"""The Grafana dashboard: generated, shipped as package data, and carried by the ConfigMap."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import yaml

from promdemo_operator.core.rules import RECORDS

ROOT = Path(__file__).resolve().parents[3]
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


def _targets(dashboard: dict) -> list[tuple[dict, str]]:
    return [(p, t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def test_panels_cover_the_lessons_and_the_alerts() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(expr for _, expr in _targets(dashboard))
    for needle in (
        "rate(http_request_latency_seconds_bucket",
        'result="success"',
        "product_inventory",
        "ALERTS",
        "increase(orders_total",
        "dependency_call_seconds_bucket",
        "dependency_errors_total",
    ):
        assert needle in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_panels_read_the_recording_rules() -> None:
    """Where core/rules.py records a lesson's number, the dashboard reads the record."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(expr for _, expr in _targets(dashboard))
    for record in RECORDS:
        assert record in exprs, f"{record} is recorded but no panel reads it"
    # ... and does not compute it again
    assert "http_request_latency_seconds_sum" not in exprs
    assert "histogram_quantile(0.95, sum by (le) (rate(http_request_latency" not in exprs


def test_every_query_selects_job_and_namespace() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for _, expr in _targets(dashboard):
        assert 'job="$job", namespace=~"$namespace"' in expr, expr
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    namespace = variables["namespace"]
    # "All" must also match promdemo local's series, which have no namespace label
    assert namespace["includeAll"] is True
    assert namespace["allValue"] == ".*"
    assert "$namespace" in variables["job"]["definition"]


def test_a_panel_has_one_unit_for_all_its_series() -> None:
    """Seconds panels hold only seconds: no errors/s drawn on an axis labelled s."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel, expr in _targets(dashboard):
        seconds = "histogram_quantile" in expr or "_seconds:" in expr
        if panel["fieldConfig"]["defaults"]["unit"] == "s":
            assert seconds, f"{panel['title']}: {expr} is not in seconds"
        elif seconds:
            raise AssertionError(f"{panel['title']}: seconds shown with another unit")


def test_the_dependency_p95_says_its_bucket_bound() -> None:
    """The buckets have no bound between 1 and 2 s: the panel says so (true p95 1.43 s)."""
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if "dependency_call" in p["targets"][0]["expr"]]
    assert "(1, 2]" in panel["title"]
    assert "1.43" in panel["description"]
