"""promstatus: the status the operator writes about Prometheus, from selection and snapshots.

Inputs are what the operator holds: the Prometheus objects of tests/fixtures/prometheus/
(kube-prometheus-stack with its defaults, release `prometheus`; kube-prometheus), specs
parsed by `parse_spec`, and real Prometheus 2.42 answers (tests/unit/data/promapi/:
`demo/shop` scraped and evaluated after 40 orders, `other/shop` a closed port).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from promdemo_operator.core.reconcile_status import find_condition, status_changes
from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.parse import Snapshot
from promdemo_operator.prometheus.status import (
    RULES_LOADED,
    SELECTED,
    TARGETS_UP,
    Asked,
    auto_match,
    health_status,
    monitoring_objects,
    prometheus_record,
    select,
    selected_condition,
)

TESTS = Path(__file__).resolve().parents[2]
FIXTURES = TESTS / "fixtures" / "prometheus"
DATA = TESTS / "unit" / "data" / "promapi"
KPS = "monitoring/prometheus-kube-prometheus-prometheus"
NOW = "2026-08-01T10:00:00Z"
LATER = "2026-08-01T10:05:00Z"


def fixture(name: str) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all((FIXTURES / name).read_text()) if d)


def body(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def kps(release: str = "prometheus", name: str | None = None) -> dict[str, Any]:
    """kube-prometheus-stack's Prometheus object for `release` (its selectors' label)."""
    obj = copy.deepcopy(fixture("kube-prometheus-stack.yaml"))
    for field in ("serviceMonitorSelector", "ruleSelector"):
        obj["spec"][field] = {"matchLabels": {"release": release}}
    if name:
        obj["metadata"]["name"] = name
    return obj


def records(*objs: dict[str, Any]) -> list[dict[str, Any]]:
    return [prometheus_record(o) for o in objs]


def condition_for(spec: dict[str, Any], *proms: dict[str, Any]) -> dict[str, str]:
    parsed = parse_spec(spec)
    parsed, auto = auto_match("shop", "demo", parsed, records(*proms), {})
    report = select(records(*proms), monitoring_objects("shop", "demo", parsed), {})
    return selected_condition(
        wanted=True, monitoring_served=True, prometheus_served=True, report=report, auto=auto
    )


# --------------------------------------------------------------------------- what is kept


def test_a_prometheus_record_keeps_what_selection_and_the_proxy_read_and_nothing_else() -> None:
    obj = fixture("kube-prometheus-stack.yaml")
    obj["spec"]["web"] = {"tlsConfig": {"keySecret": {"name": "tls", "key": "tls.key"}}}
    obj["spec"]["image"] = "quay.io/prometheus/prometheus:v3.16.0"
    record = prometheus_record(obj)
    assert record["metadata"] == {"name": "prometheus-kube-prometheus-prometheus",
                                  "namespace": "monitoring"}  # fmt: skip
    assert record["spec"]["serviceMonitorSelector"] == {"matchLabels": {"release": "prometheus"}}
    assert record["spec"]["web"] == {"tlsConfig": obj["spec"]["web"]["tlsConfig"]}
    # an invalid PodMonitor selector keeps every ServiceMonitor out: selection reads it
    assert record["spec"]["podMonitorSelector"] == {"matchLabels": {"release": "prometheus"}}
    assert "image" not in record["spec"]
    # prometheus-operator rewrites the status often: the record does not change with it.
    changed = copy.deepcopy(obj)
    changed["status"] = {"availableReplicas": 1, "conditions": [{"type": "Available"}]}
    changed["metadata"]["resourceVersion"] = "99"
    assert prometheus_record(changed) == record
    changed["spec"]["ruleSelector"] = {}
    assert prometheus_record(changed) != record


# --------------------------------------------------------------------------- PrometheusSelected


def test_kube_prometheus_stack_ignores_a_default_promdemo_and_the_condition_says_which_label() -> (
    None
):
    cond = condition_for({}, kps())
    assert cond["type"] == SELECTED
    assert (cond["status"], cond["reason"]) == ("False", "LabelsNotMatched")
    assert cond["message"] == (
        f"Prometheus {KPS} selects ServiceMonitors and PrometheusRules labelled"
        " release=prometheus; add spec.monitoring.labels: {release: prometheus}"
    )


def test_the_label_added_makes_it_true_naming_the_prometheus() -> None:
    cond = condition_for({"monitoring": {"labels": {"release": "prometheus"}}}, kps())
    assert (cond["status"], cond["reason"]) == ("True", "Selected")
    assert cond["message"] == f"selected by Prometheus {KPS} (ServiceMonitor and PrometheusRule)"


def test_the_live_labels_decide_not_the_spec() -> None:
    """Labels another writer put on the live objects count; the spec's count once applied."""
    spec = parse_spec({})
    live = {
        kind: {"metadata": {"labels": {"release": "prometheus", "app.kubernetes.io/name": "x"}}}
        for kind in ("ServiceMonitor", "PrometheusRule")
    }
    report = select(records(kps()), monitoring_objects("shop", "demo", spec, live), {})
    assert report.selected
    assert not select(records(kps()), monitoring_objects("shop", "demo", spec), {}).selected


def test_unknown_while_it_cannot_be_decided() -> None:
    def cond(**kwargs: Any) -> tuple[str, str]:
        args = {"wanted": True, "monitoring_served": True, "prometheus_served": True,
                "report": None, **kwargs}  # fmt: skip
        c = selected_condition(**args)
        return c["status"], c["reason"]

    assert cond(wanted=False) == ("Unknown", "NothingToSelect")
    assert cond(monitoring_served=False) == ("Unknown", "MonitoringCRDsMissing")
    assert cond(prometheus_served=False) == ("Unknown", "PrometheusCRDMissing")
    none = select([], monitoring_objects("shop", "demo", parse_spec({})), {})
    assert cond(report=none) == ("False", "NoPrometheus")


def test_match_prometheus_auto_adds_the_release_label() -> None:
    spec, auto = auto_match(
        "shop", "demo", parse_spec({"monitoring": {"matchPrometheus": "auto",
                                                   "labels": {"team": "shop"}}}),
        records(kps()), {},
    )  # fmt: skip
    assert auto is not None
    assert dict(auto.labels or {}) == {"release": "prometheus"}
    assert dict(spec.monitoring.labels) == {"release": "prometheus", "team": "shop"}
    cond = condition_for({"monitoring": {"matchPrometheus": "auto"}}, kps())
    assert (cond["status"], cond["reason"]) == ("True", "Selected")
    assert cond["message"].endswith("; matchPrometheus: auto added {release: prometheus}")


def test_match_prometheus_auto_never_guesses() -> None:
    # Two Prometheus objects wanting different releases: no guess.
    cond = condition_for({"monitoring": {"matchPrometheus": "auto"}}, kps(), kps("kps", "other"))
    assert (cond["status"], cond["reason"]) == ("False", "AmbiguousPrometheus")
    assert "set spec.monitoring.labels to the one you mean" in cond["message"]
    # A label the user set is never overridden.
    cond = condition_for(
        {"monitoring": {"matchPrometheus": "auto", "labels": {"release": "mine"}}}, kps()
    )
    assert (cond["status"], cond["reason"]) == ("False", "NoMatchablePrometheus")
    spec, _ = auto_match(
        "shop", "demo",
        parse_spec({"monitoring": {"matchPrometheus": "auto", "labels": {"release": "mine"}}}),
        records(kps()), {},
    )  # fmt: skip
    assert dict(spec.monitoring.labels) == {"release": "mine"}
    # off (the default) adds nothing.
    spec, auto = auto_match("shop", "demo", parse_spec({}), records(kps()), {})
    assert auto is None
    assert dict(spec.monitoring.labels) == {}


def test_kube_prometheus_selects_everything_so_auto_adds_nothing() -> None:
    cond = condition_for(
        {"monitoring": {"matchPrometheus": "auto"}}, fixture("kube-prometheus.yaml")
    )
    assert cond["status"] == "True"
    assert "auto added" not in cond["message"]


# --------------------------------------------------------------------------- health


def snapshot(**errors: str) -> Snapshot:
    parts: dict[str, Any] = {"targets": body("targets"), "rules": body("rules"),
                             "lessons": body("lessons")}  # fmt: skip
    for part in errors:
        parts[part] = None
    return Snapshot(**parts, errors=errors)


def asked(snap: Snapshot | None = None) -> list[Asked]:
    return [Asked(KPS, snap or snapshot(), namespace="monitoring", service="prometheus-operated")]


def health(namespace: str = "demo", current: dict[str, Any] | None = None, **kwargs: Any) -> dict:
    args = {"service_monitor": True, "prometheus_rule": True, "replicas": 1,
            "asked": asked(), "now": NOW, **kwargs}  # fmt: skip
    return health_status(current or {}, namespace=namespace, name="shop", **args)


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = find_condition(status["conditions"], type_)
    assert found is not None
    return dict(found)


def test_scraped_and_evaluated_with_the_lesson_numbers() -> None:
    status = health()
    targets = cond(status, TARGETS_UP)
    assert (targets["status"], targets["reason"]) == ("True", "TargetsUp")
    assert targets["message"] == f"1/1 up in Prometheus {KPS}"
    rules = cond(status, RULES_LOADED)
    assert (rules["status"], rules["reason"]) == ("True", "RulesLoaded")
    assert rules["message"] == (
        f"promdemo.alerts and promdemo.recording loaded (11 rules, every 1s) in Prometheus {KPS}"
    )
    assert status["targets"] == {"up": 1, "total": 1}
    assert status["lessons"] == {"p95Seconds": 0.29, "successRatio": 0.65,
                                 "requestsPerSecond": 0.147}  # fmt: skip


def test_a_target_down_says_the_scrape_error() -> None:
    status = health("other")
    targets = cond(status, TARGETS_UP)
    assert (targets["status"], targets["reason"]) == ("False", "TargetsDown")
    assert "connect: connection refused" in targets["message"]
    assert status["targets"]["up"] == 0
    assert status["targets"]["total"] == 1
    assert "connection refused" in status["targets"]["lastError"]


def test_a_promdemo_prometheus_has_not_loaded_is_no_targets_and_rules_not_loaded() -> None:
    status = health("nowhere")
    assert cond(status, TARGETS_UP)["reason"] == "NoTargets"
    assert cond(status, RULES_LOADED)["reason"] == "RulesNotLoaded"
    assert status["targets"] == {"up": 0, "total": 0}
    assert status["lessons"] is None


def test_a_prometheus_the_operator_may_not_reach_names_the_permission() -> None:
    error = '/api/v1/targets: HTTP 403: services "prometheus-operated:web" is forbidden'
    status = health(asked=asked(snapshot(targets=error, rules=error.replace("targets", "rules"),
                                         lessons="HTTP 403")))  # fmt: skip
    targets = cond(status, TARGETS_UP)
    assert (targets["status"], targets["reason"]) == ("False", "PrometheusUnreachable")
    assert "its ClusterRole needs get on services/proxy" in targets["message"]
    assert "--as system:serviceaccount:promdemo-system:promdemo-operator" in targets["message"]
    assert cond(status, RULES_LOADED)["reason"] == "PrometheusUnreachable"
    assert status["targets"] is None
    assert status["lessons"] is None


def test_nothing_asked_is_unknown_with_the_reason() -> None:
    status = health(asked=[])
    for type_ in (TARGETS_UP, RULES_LOADED):
        c = cond(status, type_)
        assert (c["status"], c["reason"]) == ("Unknown", "NotSelected")
    assert status["targets"] is None
    assert status["lessons"] is None
    off = health(service_monitor=False, prometheus_rule=False)
    assert cond(off, TARGETS_UP)["reason"] == "ServiceMonitorDisabled"
    assert cond(off, RULES_LOADED)["reason"] == "PrometheusRuleDisabled"
    assert off["lessons"] is None
    zero = health(replicas=0)
    assert (cond(zero, TARGETS_UP)["status"], cond(zero, TARGETS_UP)["reason"]) == (
        "Unknown", "ScaledToZero",
    )  # fmt: skip


def test_the_same_answer_again_changes_nothing_so_nothing_is_written() -> None:
    first = health()
    current = {**first, "conditions": first["conditions"]}
    again = health(current=current, now=LATER)
    assert status_changes(current, again) == {}
    # A target going down: only what changed, and that condition's transition time.
    down = health_status(
        current, namespace="other", name="shop", service_monitor=True, prometheus_rule=True,
        replicas=1, asked=asked(), now=LATER,
    )  # fmt: skip
    changes = status_changes(current, down)
    assert set(changes) >= {"targets", "conditions"}
    assert cond(down, TARGETS_UP)["lastTransitionTime"] == LATER


def test_other_conditions_are_kept() -> None:
    current = {"conditions": [{"type": "Available", "status": "True", "reason": "ReplicasReady",
                               "message": "1/1", "lastTransitionTime": NOW}]}  # fmt: skip
    status = health(current=current)
    assert [c["type"] for c in status["conditions"]] == ["Available", TARGETS_UP, RULES_LOADED]
