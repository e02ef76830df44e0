"""prometheus/status.py's `prometheuses_to_ask`: whom the observe loop asks about a PromDemo.

Inputs as the reconcile holds them: kube-prometheus-stack's Prometheus object
(tests/fixtures/prometheus/, its selectors set to a `release` label), a spec parsed by
`parse_spec`, the selection report and the PrometheusSelected condition from it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.status import (
    NOT_SELECTED,
    monitoring_objects,
    prometheus_record,
    prometheuses_to_ask,
    record_key,
    select,
    selected_condition,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus"


def prometheus(name: str, release: str) -> dict[str, Any]:
    text = (FIXTURES / "kube-prometheus-stack.yaml").read_text()
    obj = copy.deepcopy(next(d for d in yaml.safe_load_all(text) if d))
    obj["metadata"]["name"] = name
    for field in ("serviceMonitorSelector", "ruleSelector"):
        obj["spec"][field] = {"matchLabels": {"release": release}}
    return prometheus_record(obj)


PROD, TEAM = prometheus("prod", "prometheus"), prometheus("team", "team")


def decide(labels: dict[str, str], *, served: bool = True, prometheus_served: bool = True):
    spec = parse_spec({"monitoring": {"labels": labels}})
    records = [PROD, TEAM]
    report = select(records, monitoring_objects("shop", "demo", spec), {})
    selected = selected_condition(
        wanted=True,
        monitoring_served=served,
        prometheus_served=prometheus_served,
        report=report,
    )
    return selected, prometheuses_to_ask(selected, report, records)


def test_the_prometheus_that_selects_the_promdemo_is_asked_and_no_other():
    selected, (asked, _) = decide({"release": "prometheus"})
    assert selected["status"] == "True"
    assert [record_key(r) for r in asked] == [record_key(PROD)]
    _, (asked, _) = decide({"release": "team"})
    assert [record_key(r) for r in asked] == [record_key(TEAM)]


def test_nobody_is_asked_when_nothing_selects_the_promdemo():
    selected, (asked, not_asked) = decide({})
    assert selected["status"] == "False"
    assert asked == ()
    assert not_asked == NOT_SELECTED


def test_missing_crds_are_why_nobody_is_asked():
    selected, (asked, not_asked) = decide({"release": "prometheus"}, served=False)
    assert asked == ()
    assert not_asked == (selected["reason"], selected["message"])
    assert not_asked[0] == "MonitoringCRDsMissing"
    _, (asked, not_asked) = decide({"release": "prometheus"}, prometheus_served=False)
    assert (asked, not_asked[0]) == ((), "PrometheusCRDMissing")
