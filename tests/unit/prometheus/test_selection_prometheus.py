"""Which Prometheus selects a PromDemo's ServiceMonitor and PrometheusRule (selection/prometheus).

The objects are the ones `render_children` gives a PromDemo; the Prometheus objects
are made up per rule, or the ones kube-prometheus-stack and kube-prometheus install
(tests/fixtures/prometheus/, each with its source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.core.render import render_children
from promdemo_operator.core.spec import parse_spec
from promdemo_operator.prometheus.selection import (
    KINDS,
    MonitoringObject,
    PrometheusError,
    PrometheusSelectors,
    auto_labels,
    check,
    decide,
    namespace_labels,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "prometheus"
KPS = "kube-prometheus-stack.yaml"
KPS_ALL = "kube-prometheus-stack-select-all.yaml"
KUBE_PROMETHEUS = "kube-prometheus.yaml"


def fixture(name: str) -> PrometheusSelectors:
    return PrometheusSelectors.from_object(yaml.safe_load((FIXTURES / name).read_text()))


def prometheus(namespace: str = "monitoring", name: str = "p", **spec: Any) -> PrometheusSelectors:
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return PrometheusSelectors.from_object(body)


def objects(name: str = "shop", namespace: str = "demo", **spec: Any) -> list[MonitoringObject]:
    """The ServiceMonitor and PrometheusRule the PromDemo would get."""
    children = render_children(name, namespace, parse_spec(spec), token="x")
    return [MonitoringObject.from_object(c) for c in children if c["kind"] in KINDS]


def one(kind: str, **spec: Any) -> MonitoringObject:
    return next(o for o in objects(**spec) if o.kind.kind == kind)


ALL = {"serviceMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {}}
EVERYTHING = {"serviceMonitorSelector": {}, "ruleSelector": {}, **ALL}


# --------------------------------------------------------------------------- object selectors


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_nil_selector_selects_nothing(kind: str) -> None:
    verdict = decide(prometheus(**ALL), one(kind), namespace_labels("demo"))
    assert not verdict.selected
    assert verdict.reason == "NoSelector"
    field = KINDS[kind].selector_field
    assert verdict.message == (
        f"Prometheus monitoring/p has no {field}: it selects no {KINDS[kind].plural}"
    )
    assert verdict.fix == f"set spec.{field} of Prometheus monitoring/p ({{}} selects every {kind})"


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_empty_selector_selects_everything(kind: str) -> None:
    verdict = decide(prometheus(**EVERYTHING), one(kind), namespace_labels("demo"))
    assert verdict.selected
    assert verdict.reason == "Selected"
    assert verdict.fix is None


def test_match_labels_against_the_rendered_labels() -> None:
    prom = prometheus(serviceMonitorSelector={"matchLabels": {"team": "shop"}}, **ALL)
    assert not decide(prom, one("ServiceMonitor"), namespace_labels("demo")).selected
    labelled = one("ServiceMonitor", monitoring={"labels": {"team": "shop"}})
    assert decide(prom, labelled, namespace_labels("demo")).selected


def test_promdemos_own_labels_can_be_selected_on() -> None:
    prom = prometheus(
        serviceMonitorSelector={
            "matchLabels": {"app.kubernetes.io/managed-by": "promdemo-operator"}
        },
        **ALL,
    )
    assert decide(prom, one("ServiceMonitor"), namespace_labels("demo")).selected


@pytest.mark.parametrize(
    ("expression", "labels", "selected"),
    [
        ({"key": "team", "operator": "In", "values": ["a", "b"]}, {"team": "b"}, True),
        ({"key": "team", "operator": "In", "values": ["a", "b"]}, {"team": "c"}, False),
        ({"key": "team", "operator": "In", "values": ["a", "b"]}, {}, False),
        ({"key": "team", "operator": "NotIn", "values": ["a"]}, {"team": "a"}, False),
        ({"key": "team", "operator": "NotIn", "values": ["a"]}, {}, True),
        ({"key": "team", "operator": "Exists"}, {"team": "x"}, True),
        ({"key": "team", "operator": "Exists"}, {}, False),
        ({"key": "team", "operator": "DoesNotExist"}, {"team": "x"}, False),
        ({"key": "team", "operator": "DoesNotExist"}, {}, True),
    ],
)
def test_match_expressions_on_the_object(
    expression: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    prom = prometheus(ruleSelector={"matchExpressions": [expression]}, **ALL)
    rule = one("PrometheusRule", monitoring={"labels": labels})
    assert decide(prom, rule, namespace_labels("demo")).selected is selected


def test_requirement_on_promdemos_own_label_needs_a_prometheus_change() -> None:
    prom = prometheus(
        serviceMonitorSelector={"matchLabels": {"app.kubernetes.io/name": "myapp"}}, **ALL
    )
    verdict = decide(prom, one("ServiceMonitor"), namespace_labels("demo"))
    assert verdict.reason == "LabelsNotMatched"
    assert verdict.labels is None
    assert verdict.effort == 3
    assert verdict.fix == (
        "change spec.serviceMonitorSelector of Prometheus monitoring/p (needs"
        " app.kubernetes.io/name=myapp, but app.kubernetes.io/name=promdemo cannot change)"
    )


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("serviceMonitorSelector", {"matchExpressions": [{"key": "a", "operator": "Gt"}]}),
        ("serviceMonitorNamespaceSelector", {"matchLabels": {"a": ["list"]}}),
    ],
)
def test_invalid_selector_selects_nothing(field: str, raw: dict[str, Any]) -> None:
    prom = prometheus(**{**EVERYTHING, field: raw})
    verdict = decide(prom, one("ServiceMonitor"), namespace_labels("demo"))
    assert not verdict.selected
    assert verdict.reason == "InvalidSelector"
    assert f"has an invalid {field}" in verdict.message
    assert verdict.fix == f"correct spec.{field} of Prometheus monitoring/p"


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("ruleNamespaceSelector", {"matchExpressions": [{"key": "t", "operator": "Exists",
                                                         "values": ["x"]}]}),
        ("ruleSelector", {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
        ("podMonitorSelector", {"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
        ("scrapeConfigNamespaceSelector", {"matchExpressions": [{"key": "a", "operator": "Gt"}]}),
    ],
)  # fmt: skip
def test_an_invalid_selector_of_another_kind_keeps_the_service_monitor_out(
    field: str, raw: dict[str, Any]
) -> None:
    """prometheus-operator writes the rule files first and the scrape configuration after
    converting every selector: an invalid one fails its reconcile before the jobs exist
    (found by tests/cluster/test_selection_differential.py, e.g. ruleNamespaceSelector)."""
    prom = prometheus(**{**EVERYTHING, field: raw})
    verdict = decide(prom, one("ServiceMonitor"), namespace_labels("demo"))
    assert not verdict.selected
    assert verdict.reason == "InvalidSelector"
    assert verdict.message.startswith(f"Prometheus monitoring/p has an invalid {field} (")
    assert "fails before it writes the ServiceMonitors' scrape jobs" in verdict.message
    assert verdict.fix == f"correct spec.{field} of Prometheus monitoring/p"


def test_an_invalid_service_monitor_selector_leaves_the_rules_selected() -> None:
    """The rule files are written before the ServiceMonitors are selected."""
    bad = {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}
    prom = prometheus(**{**EVERYTHING, "serviceMonitorSelector": bad})
    assert decide(prom, one("PrometheusRule"), namespace_labels("demo")).selected
    assert not decide(prom, one("ServiceMonitor"), namespace_labels("demo")).selected


# --------------------------------------------------------------------------- namespace selectors


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_nil_namespace_selector_means_the_prometheus_namespace_only(kind: str) -> None:
    prom = prometheus(serviceMonitorSelector={}, ruleSelector={})
    here = one(kind, namespace="monitoring")
    elsewhere = one(kind, namespace="demo")
    assert decide(prom, here, namespace_labels("monitoring")).selected
    verdict = decide(prom, elsewhere, namespace_labels("demo"))
    assert not verdict.selected
    assert verdict.reason == "NamespaceNotSelected"
    field = KINDS[kind].namespace_selector_field
    assert verdict.message == (
        f"Prometheus monitoring/p looks for {KINDS[kind].plural} only in its own namespace"
        f" monitoring ({field} is not set)"
    )
    assert verdict.fix == (
        f"create the PromDemo in namespace monitoring, or set spec.{field}: {{}}"
        " on Prometheus monitoring/p"
    )


def test_empty_namespace_selector_means_every_namespace() -> None:
    prom = prometheus(**EVERYTHING)
    for ns in ("demo", "kube-system", "monitoring"):
        assert all(decide(prom, o, namespace_labels(ns)).selected for o in objects(namespace=ns))


def test_namespace_selector_matches_the_namespace_labels_not_the_objects() -> None:
    prom = prometheus(
        serviceMonitorSelector={},
        serviceMonitorNamespaceSelector={"matchLabels": {"monitoring": "on"}},
    )
    labelled_object = one("ServiceMonitor", monitoring={"labels": {"monitoring": "on"}})
    verdict = decide(prom, labelled_object, namespace_labels("demo"))
    assert not verdict.selected
    assert verdict.reason == "NamespaceNotSelected"
    assert verdict.message == (
        "Prometheus monitoring/p looks for ServiceMonitors only in namespaces labelled"
        " monitoring=on (namespace demo has labels kubernetes.io/metadata.name=demo)"
    )
    assert verdict.fix == "label the namespace: kubectl label namespace demo monitoring=on"
    assert verdict.effort == 2
    selected = decide(prom, labelled_object, namespace_labels("demo", {"monitoring": "on"}))
    assert selected.selected


@pytest.mark.parametrize(
    ("expression", "namespace", "selected"),
    [
        ({"operator": "In", "values": ["demo", "shop"]}, "demo", True),
        ({"operator": "In", "values": ["demo", "shop"]}, "other", False),
        ({"operator": "NotIn", "values": ["kube-system"]}, "demo", True),
        ({"operator": "NotIn", "values": ["kube-system"]}, "kube-system", False),
    ],
)
def test_namespace_selector_on_the_name_label_the_api_server_sets(
    expression: dict[str, Any], namespace: str, selected: bool
) -> None:
    prom = prometheus(
        ruleSelector={},
        ruleNamespaceSelector={
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", **expression}]
        },
    )
    rule = one("PrometheusRule", namespace=namespace)
    verdict = decide(prom, rule, namespace_labels(namespace))
    assert verdict.selected is selected
    if not selected:  # the name label cannot be changed: only the Prometheus can
        assert verdict.fix is not None
        assert verdict.fix.startswith("change spec.ruleNamespaceSelector of Prometheus")
        assert verdict.effort == 3


def test_namespace_and_labels_both_wrong_give_both_fixes() -> None:
    prom = prometheus(
        serviceMonitorSelector={"matchLabels": {"release": "kps"}},
        serviceMonitorNamespaceSelector={
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]
        },
    )
    verdict = decide(prom, one("ServiceMonitor"), namespace_labels("demo"))
    assert verdict.reason == "NamespaceNotSelected"
    assert verdict.fix == (
        "add spec.monitoring.labels: {release: kps}; and label the namespace:"
        " kubectl label namespace demo team=a"
    )


# --------------------------------------------------------------------------- as installed


def test_kube_prometheus_stack_defaults_ignore_a_promdemo_without_the_release_label() -> None:
    report = check([fixture(KPS)], objects(), {})
    assert not report.selected
    assert report.reason == "LabelsNotMatched"
    assert report.fix == "add spec.monitoring.labels: {release: prometheus}"
    assert report.message == (
        "Prometheus monitoring/prometheus-kube-prometheus-prometheus selects ServiceMonitors and"
        " PrometheusRules labelled release=prometheus;"
        " add spec.monitoring.labels: {release: prometheus}"
    )


def test_kube_prometheus_stack_defaults_select_it_after_the_fix() -> None:
    fixed = objects(monitoring={"labels": {"release": "prometheus"}})
    report = check([fixture(KPS)], fixed, {})
    assert report.selected
    assert report.selected_by == ("monitoring/prometheus-kube-prometheus-prometheus",)
    assert report.message == (
        "selected by Prometheus monitoring/prometheus-kube-prometheus-prometheus"
        " (ServiceMonitor and PrometheusRule)"
    )


@pytest.mark.parametrize("namespace", ["demo", "default", "monitoring"])
def test_kube_prometheus_stack_with_nil_uses_helm_values_false_selects_any(namespace: str) -> None:
    assert check([fixture(KPS_ALL)], objects(namespace=namespace), {}).selected


@pytest.mark.parametrize("namespace", ["demo", "default", "monitoring"])
def test_kube_prometheus_selects_every_namespace(namespace: str) -> None:
    report = check([fixture(KUBE_PROMETHEUS)], objects(namespace=namespace), {})
    assert report.selected_by == ("monitoring/k8s",)


# --------------------------------------------------------------------------- several Prometheus


def test_any_one_prometheus_selecting_both_is_enough() -> None:
    report = check([fixture(KPS), fixture(KUBE_PROMETHEUS)], objects(), {})
    assert report.selected
    assert report.selected_by == ("monitoring/k8s",)


def test_metrics_and_rules_in_different_prometheus_is_not_selected() -> None:
    scrapes = prometheus(name="scraper", serviceMonitorSelector={}, **ALL)
    evaluates = prometheus(name="ruler", ruleSelector={}, **ALL)
    report = check([scrapes, evaluates], objects(), {})
    assert report.selecting("ServiceMonitor") == ("monitoring/scraper",)
    assert report.selecting("PrometheusRule") == ("monitoring/ruler",)
    assert not report.selected
    assert report.reason == "SelectedByDifferentPrometheuses"
    assert "no single Prometheus selects both" in report.message


def test_the_fix_shown_is_the_cheapest() -> None:
    needs_prometheus_change = prometheus(name="a", **ALL)  # nil selectors
    needs_labels = fixture(KPS)
    report = check([needs_prometheus_change, needs_labels], objects(), {})
    assert report.fix == "add spec.monitoring.labels: {release: prometheus}"


def test_no_prometheus_at_all() -> None:
    report = check([], objects(), {})
    assert not report.selected
    assert report.reason == "NoPrometheus"


def test_service_monitor_off_checks_the_rule_only() -> None:
    only_rule = objects(monitoring={"serviceMonitor": False})
    assert [o.kind.kind for o in only_rule] == ["PrometheusRule"]
    prom = prometheus(ruleSelector={}, **ALL)  # no serviceMonitorSelector
    assert check([prom], only_rule, {}).selected


def test_monitoring_off_has_nothing_to_select() -> None:
    none = objects(monitoring={"serviceMonitor": False, "prometheusRule": False})
    report = check([fixture(KPS)], none, {})
    assert report.selected
    assert report.reason == "NothingToSelect"


def test_selectors_needing_different_values_cannot_be_met_by_one_label_set() -> None:
    prom = prometheus(
        serviceMonitorSelector={"matchLabels": {"release": "a"}},
        ruleSelector={"matchLabels": {"release": "b"}},
        **ALL,
    )
    report = check([prom], objects(), {})
    assert report.fix is not None
    assert report.fix.startswith("change the selectors of Prometheus monitoring/p")
    assert "release=a for one, release=b for the other" in report.fix


# --------------------------------------------------------------------------- matchPrometheus: auto


def test_auto_labels_from_the_one_prometheus() -> None:
    auto = auto_labels([fixture(KPS)], objects(), {})
    assert dict(auto.labels or {}) == {"release": "prometheus"}
    assert auto.reason == "LabelsAdded"
    assert auto.prometheus == "monitoring/prometheus-kube-prometheus-prometheus"
    # and those labels do what they promise
    labelled = objects(monitoring={"labels": dict(auto.labels or {})})
    assert check([fixture(KPS)], labelled, {}).selected


def test_auto_adds_nothing_when_already_selected() -> None:
    auto = auto_labels([fixture(KPS), fixture(KUBE_PROMETHEUS)], objects(), {})
    assert auto.labels == {}
    assert auto.reason == "Selected"


def test_auto_refuses_when_two_prometheus_need_different_labels() -> None:
    body = yaml.safe_load((FIXTURES / KPS).read_text())
    other = yaml.safe_load(yaml.safe_dump(body).replace("prometheus", "second"))
    auto = auto_labels([fixture(KPS), PrometheusSelectors.from_object(other)], objects(), {})
    assert auto.refused
    assert auto.reason == "AmbiguousPrometheus"
    assert "{release: prometheus}" in auto.message
    assert "{release: second}" in auto.message


def test_auto_accepts_several_prometheus_that_need_the_same_labels() -> None:
    a = prometheus(
        name="a", serviceMonitorSelector={"matchLabels": {"r": "x"}}, ruleSelector={}, **ALL
    )
    b = prometheus(
        name="b", serviceMonitorSelector={"matchLabels": {"r": "x"}}, ruleSelector={}, **ALL
    )
    auto = auto_labels([a, b], objects(), {})
    assert dict(auto.labels or {}) == {"r": "x"}


def test_auto_refuses_a_namespace_the_prometheus_does_not_look_in() -> None:
    prom = prometheus(serviceMonitorSelector={"matchLabels": {"release": "kps"}}, ruleSelector={})
    auto = auto_labels([prom], objects(namespace="demo"), {})
    assert auto.refused
    assert auto.reason == "NoMatchablePrometheus"
    assert "create the PromDemo in namespace monitoring" in auto.message


def test_auto_never_overrides_a_label_the_user_set() -> None:
    user = {"release": "mine"}
    auto = auto_labels([fixture(KPS)], objects(monitoring={"labels": user}), {}, user_labels=user)
    assert auto.refused
    assert "spec.monitoring.labels sets otherwise" in auto.message


def test_auto_refuses_a_label_it_would_have_to_invent() -> None:
    prom = prometheus(
        serviceMonitorSelector={"matchExpressions": [{"key": "team", "operator": "Exists"}]},
        ruleSelector={},
        **ALL,
    )
    auto = auto_labels([prom], objects(), {})
    assert auto.refused
    assert "team with a value of your choice" in auto.message


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"apiVersion": "v1", "kind": "Service", "metadata": {}}, "expected a monitoring"),
        (
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": {"name": "p"},
            },
            "Prometheus 'p': no metadata.namespace",
        ),
        ({"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus"}, "no metadata"),
    ],
)
def test_not_a_prometheus(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        PrometheusSelectors.from_object(body)


def test_monitoring_object_from_a_manifest() -> None:
    sm = one("ServiceMonitor", monitoring={"labels": {"release": "kps"}})
    assert sm.key == "demo/shop"
    assert sm.labels["release"] == "kps"
    assert sm.labels["app.kubernetes.io/instance"] == "shop"
