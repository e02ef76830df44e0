"""prometheus/status.py's `selection`: PrometheusSelected as the reconcile decides it, and
whom the observe loop asks about the PromDemo (`prometheuses_to_ask`).

Inputs as the reconcile holds them: kube-prometheus-stack's Prometheus object
(tests/fixtures/prometheus/, its selectors set to a `release` label), a spec parsed by
`parse_spec`, the ServiceMonitor and PrometheusRule as applied.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.status import (
    NOT_SELECTED,
    Selection,
    prometheus_record,
    record_key,
    selection,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "prometheus"


def prometheus(name: str, release: str) -> dict[str, Any]:
    text = (FIXTURES / "kube-prometheus-stack.yaml").read_text()
    obj = copy.deepcopy(next(d for d in yaml.safe_load_all(text) if d))
    obj["metadata"]["name"] = name
    for field in ("serviceMonitorSelector", "ruleSelector"):
        obj["spec"][field] = {"matchLabels": {"release": release}}
    return prometheus_record(obj)


PROD, TEAM = prometheus("prod", "prometheus"), prometheus("team", "team")


def decide(
    monitoring: dict[str, Any],
    *,
    live: dict[str, Any] | None = None,
    served: bool = True,
    prometheus_served: bool = True,
) -> Selection:
    return selection(
        "shop",
        "demo",
        parse_spec({"monitoring": monitoring}),
        live=live or {},
        monitoring_served=served,
        prometheus_served=prometheus_served,
        records=[PROD, TEAM],
        namespace_labels={},
    )


def asked(decided: Selection) -> list[str]:
    return [record_key(r) for r in decided.asked]


def test_the_prometheus_that_selects_the_promdemo_is_asked_and_no_other():
    decided = decide({"labels": {"release": "prometheus"}})
    assert decided.condition["status"] == "True"
    assert asked(decided) == [record_key(PROD)]
    assert asked(decide({"labels": {"release": "team"}})) == [record_key(TEAM)]


def test_the_labels_as_applied_count_not_the_spec_alone():
    """Another writer's label on the live objects is what a Prometheus sees."""
    labelled = {"metadata": {"name": "shop", "labels": {"release": "team"}}}
    decided = decide({}, live={"ServiceMonitor": labelled, "PrometheusRule": labelled})
    assert decided.condition["status"] == "True"
    assert asked(decided) == [record_key(TEAM)]


def test_nobody_is_asked_when_nothing_selects_the_promdemo():
    decided = decide({})
    assert decided.condition["status"] == "False"
    assert "release" in decided.condition["message"]  # the label to add
    assert (decided.asked, decided.not_asked) == ((), NOT_SELECTED)


def test_missing_crds_are_why_nobody_is_asked():
    decided = decide({"labels": {"release": "prometheus"}}, served=False)
    assert decided.asked == ()
    assert decided.condition["status"] == "Unknown"
    reason = decided.condition["reason"]
    assert decided.not_asked == (reason, decided.condition["message"])
    assert reason == "MonitoringCRDsMissing"
    decided = decide({"labels": {"release": "prometheus"}}, prometheus_served=False)
    assert (decided.asked, decided.not_asked[0]) == ((), "PrometheusCRDMissing")


def test_monitoring_switched_off_has_nothing_to_select():
    decided = decide({"serviceMonitor": False, "prometheusRule": False})
    assert (decided.condition["status"], decided.condition["reason"]) == (
        "Unknown",
        "NothingToSelect",
    )
    assert (decided.asked, decided.not_asked) == ((), NOT_SELECTED)
