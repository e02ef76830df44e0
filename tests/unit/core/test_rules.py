"""promdemo_operator.core.rules: the rule groups rendered from spec.monitoring."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from promdemo_operator.core.rules import rule_groups, rules_file
from promdemo_operator.core.spec import AlertsSpec, SpecError, parse_spec
from tests.support.tools import require_binary

OPERATOR_SELECTOR = {"namespace": "shop", "job": "shop"}
ALERTS = [
    "InventoryNegative",
    "NoSuccessOrders",
    "OrderServiceDown",
    "HighLatencyP95",
    "LowSuccessRate",
    "DependencyErrors",
]
RECORDS = [
    "job:http_requests:rate5m",
    "job:http_request_latency_seconds:p95_rate5m",
    "job:http_request_latency_seconds:p50_rate5m",
    "job:http_request_latency_seconds:mean5m",
    "job:orders_success_per_orders:ratio_rate5m",
    "job:http_requests_in_progress:max_over_time1m",
]


def _rules(groups: list[dict]) -> dict[str, dict]:
    return {r.get("alert") or r["record"]: r for g in groups for r in g["rules"]}


def alerts(monitoring: dict | None = None) -> AlertsSpec:
    """The typed alerts of a spec whose `monitoring` is `monitoring` (defaults elsewhere)."""
    return parse_spec({"monitoring": monitoring or {}}).monitoring.alerts


def test_partial_alert_settings_keep_other_defaults() -> None:
    rules = _rules(
        rule_groups(alerts({"alerts": {"noSuccessOrders": {"for": "10m"}}}), selector={"job": "j"})
    )
    assert rules["NoSuccessOrders"]["for"] == "10m"
    assert (
        rules["NoSuccessOrders"]["expr"]
        == 'increase(orders_total{result="success", job="j"}[30m]) < 100'
    )
    assert (
        rules["HighLatencyP95"]
        == _rules(rule_groups(alerts(), selector={"job": "j"}))["HighLatencyP95"]
    )


def test_rules_hold_no_defaults_of_their_own() -> None:
    """Every default lives in core/spec.py: core/rules.py takes the typed alerts, nothing else."""
    source = (
        Path(__file__).resolve().parents[3] / "operator" / "promdemo_operator" / "core/rules.py"
    ).read_text()
    for default in ('"30m"', '"5m"', "minOrders", "thresholdSeconds", "ratePerSecond"):
        assert default not in source


def test_names_and_groups() -> None:
    groups = rule_groups(alerts(), selector={"job": "promdemo"})
    assert [g["name"] for g in groups] == ["promdemo.recording", "promdemo.alerts"]
    rules = _rules(groups)
    assert [r for r in rules if r in RECORDS] == RECORDS
    assert [r for r in rules if r in ALERTS] == ALERTS
    for name in RECORDS:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name)
        level, metric, _ = name.split(":")
        assert level == "job"
        assert not metric.endswith("_total"), "rate() drops _total from the metric name"


def test_recording_names_say_what_was_computed() -> None:
    """`:mean5m` is rate(_sum)/rate(_count); `_per_…:ratio_rate5m` divides two rates."""
    rules = _rules(rule_groups(alerts(), selector={"job": "promdemo"}))
    mean = rules["job:http_request_latency_seconds:mean5m"]["expr"]
    assert "_sum" in mean.split(" / ")[0]
    assert "_count" in mean.split(" / ")[1]
    ratio = rules["job:orders_success_per_orders:ratio_rate5m"]["expr"]
    assert 'result="success"' in ratio.split(" / ")[0]
    assert "result=" not in ratio.split(" / ")[1]
    p95 = rules["job:http_request_latency_seconds:p95_rate5m"]["expr"]
    assert p95.startswith("histogram_quantile(0.95, ")
    assert "[5m]" in p95


def test_order_service_down_is_the_companion_of_no_success_orders() -> None:
    """Down targets (up == 0) and no target at all (absent), with NoSuccessOrders' `for`."""
    spec = alerts({"alerts": {"noSuccessOrders": {"for": "7m"}}})
    rules = _rules(rule_groups(spec, selector=OPERATOR_SELECTOR))
    rule = rules["OrderServiceDown"]
    assert rule["expr"] == (
        'up{job="shop", namespace="shop"} == 0 or absent(up{job="shop", namespace="shop"})'
    )
    assert rule["for"] == rules["NoSuccessOrders"]["for"] == "7m"
    assert rule["labels"]["severity"] == "critical"


def test_the_alert_timing_articles_alert_verbatim() -> None:
    rule = _rules(rule_groups(alerts(), selector={"job": "promdemo"}))["NoSuccessOrders"]
    assert rule["expr"] == 'increase(orders_total{result="success", job="promdemo"}[30m]) < 100'
    assert rule["for"] == "5m"


def test_every_expression_carries_the_selector() -> None:
    for rule in _rules(rule_groups(alerts(), selector=OPERATOR_SELECTOR)).values():
        metrics = re.findall(r"([a-z_]+)\{([^}]*)\}", rule["expr"])
        assert metrics, rule
        for _, matchers in metrics:
            assert 'job="shop"' in matchers
            assert 'namespace="shop"' in matchers


def test_aggregations_keep_the_selector_keys() -> None:
    rules = _rules(rule_groups(alerts(), selector=OPERATOR_SELECTOR))
    assert (
        "sum by (job, namespace) (rate(http_requests_total"
        in rules["job:http_requests:rate5m"]["expr"]
    )
    assert "by (job, namespace, le)" in rules["HighLatencyP95"]["expr"]


def test_inventory_negative_is_per_pod_not_aggregated() -> None:
    """The heal loop needs the pod: the expression must keep every series label."""
    rule = _rules(rule_groups(alerts(), selector=OPERATOR_SELECTOR))["InventoryNegative"]
    assert rule["expr"] == 'product_inventory{job="shop", namespace="shop"} < 0'
    assert " by " not in rule["expr"]
    assert " without " not in rule["expr"]


def test_alert_labels_and_annotations() -> None:
    groups = rule_groups(alerts(), selector={"job": "promdemo"}, alert_labels={"promdemo": "shop"})
    for name in ALERTS:
        rule = _rules(groups)[name]
        assert rule["labels"]["promdemo"] == "shop"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"].endswith(f"#runbook-{name.lower()}")


def test_runbook_anchors_exist_in_the_lessons() -> None:
    lessons = (Path(__file__).resolve().parents[3] / "docs" / "lessons.md").read_text()
    for name in ALERTS:
        assert f"### Runbook: {name}\n" in lessons


def test_thresholds_windows_and_for_come_from_the_spec() -> None:
    monitoring = {
        "alerts": {
            "inventoryNegative": {"for": "30s"},
            "noSuccessOrders": {"minOrders": 5, "window": "1h", "for": "1m30s"},
            "highLatencyP95": {"thresholdSeconds": 0.25, "window": "2m", "for": "1m"},
            "lowSuccessRate": {"threshold": 0.5, "window": "10m", "for": "2m"},
            "dependencyErrors": {"ratePerSecond": 3, "window": "30s", "for": "0s"},
        }
    }
    rules = _rules(rule_groups(alerts(monitoring), selector={"job": "j"}))
    assert rules["InventoryNegative"]["for"] == "30s"
    assert rules["NoSuccessOrders"]["expr"].endswith("[1h]) < 5")
    assert rules["NoSuccessOrders"]["for"] == "1m30s"
    assert "[2m]" in rules["HighLatencyP95"]["expr"]
    assert rules["HighLatencyP95"]["expr"].endswith("> 0.25")
    assert rules["LowSuccessRate"]["expr"].endswith("< 0.5")
    assert "[10m]" in rules["LowSuccessRate"]["expr"]
    assert rules["DependencyErrors"]["expr"].endswith("[30s])) > 3")


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"alerts": {"noSuccessOrders": {"window": "30 minutes"}}}, "noSuccessOrders.window"),
        ({"alerts": {"inventoryNegative": {"for": "5"}}}, "inventoryNegative.for"),
        ({"alerts": {"lowSuccessRate": {"threshold": "0.9"}}}, "lowSuccessRate.threshold"),
        ({"alerts": {"noSuccessOrders": {"minOrders": True}}}, "noSuccessOrders.minOrders"),
    ],
)
def test_malformed_values_never_reach_the_rules(monitoring: dict, message: str) -> None:
    """parse_spec refuses them, naming the field, before any rule is built."""
    with pytest.raises(SpecError, match=re.escape(message)):
        alerts(monitoring)


def test_selector_values_are_escaped_and_keys_checked() -> None:
    rules = _rules(rule_groups(alerts(), selector={"job": 'a"b'}))
    assert 'job="a\\"b"' in rules["InventoryNegative"]["expr"]
    with pytest.raises(ValueError, match="label name"):
        rule_groups(alerts(), selector={"bad-key": "x"})


def test_rules_file_is_groups() -> None:
    assert rules_file(alerts(), selector={"job": "promdemo"}) == {
        "groups": rule_groups(alerts(), selector={"job": "promdemo"})
    }


@pytest.mark.parametrize("selector", [{"job": "promdemo"}, OPERATOR_SELECTOR])
def test_promtool_accepts_the_rules(tmp_path: Path, selector: dict[str, str]) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(
        yaml.safe_dump(rules_file(alerts(), selector=selector, alert_labels={"a": "b"}))
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
