"""The doctor's chain (prometheus/chain.py) on fixtures: each link's verdict and the first fix.

The inputs are what the API server and Prometheus answer: PromDemo objects and
their children as the operator renders them (`render_body`), the Prometheus objects
of tests/fixtures/prometheus/ (kube-prometheus-stack's and kube-prometheus's), and
real Prometheus 2.42 answers (tests/unit/data/promapi/: `demo/shop` scraped up, its
rules loaded; `other/shop` a closed port). A test that needs another state changes a
copy, in the test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from promdemo_operator.prometheus.chain import (
    BROKEN,
    LINKS,
    NOTE,
    OK,
    SKIPPED,
    Chain,
    ClusterFacts,
    Link,
    PrometheusAnswer,
    diagnose,
    prometheuses_to_ask,
    select,
)
from tests.support.rendering import render_body

TESTS = Path(__file__).resolve().parents[2]
FIXTURES = TESTS / "fixtures" / "prometheus"
DATA = TESTS / "unit" / "data" / "promapi"
TARGETS = json.loads((DATA / "targets.json").read_text())
RULES = json.loads((DATA / "rules.json").read_text())
MONITORING = frozenset({"ServiceMonitor", "PrometheusRule", "Prometheus"})
KPS = "monitoring/prometheus-kube-prometheus-prometheus"
KPS_ALL = "monitoring/kps-kube-prometheus-stack-prometheus"


def fixture(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((FIXTURES / name).read_text()) if d]
    return docs[0]


def promdemo(
    name: str = "shop",
    namespace: str = "demo",
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
        "spec": spec or {},
        "status": {"observedGeneration": 1, **(status or {})},
    }


def children(pd: dict[str, Any], *, ready: bool = True) -> dict[tuple[str, str, str], dict]:
    """The children the operator creates, the Deployment's status as its controller writes it."""
    objects = {}
    for child in render_body(pd, token="t"):
        child = copy.deepcopy(child)
        meta = child["metadata"]
        if child["kind"] == "Deployment" and ready:
            replicas = child["spec"]["replicas"]
            child["status"] = {"replicas": replicas, "readyReplicas": replicas}
        objects[(child["kind"], meta["namespace"], meta["name"])] = child
    return objects


def facts(
    *pds: dict[str, Any],
    prometheuses: list[dict[str, Any]] | None = None,
    served: frozenset[str] = MONITORING,
    objects: dict | None = None,
    **kwargs: Any,
) -> ClusterFacts:
    if objects is None:
        objects = {}
        for pd in pds:
            objects.update(children(pd))
    return ClusterFacts(
        promdemos=list(pds),
        objects=objects,
        monitoring_kinds=served,
        prometheuses=[fixture("kube-prometheus-stack-select-all.yaml")]
        if prometheuses is None
        else prometheuses,
        **kwargs,
    )


def answer(prometheus: str, **kwargs: Any) -> PrometheusAnswer:
    return PrometheusAnswer(
        prometheus,
        **{"targets": TARGETS, "rules": RULES, **kwargs},
        namespace=prometheus.split("/")[0],
        service="prometheus-operated",
    )


def run(cluster: ClusterFacts, answers: dict[str, PrometheusAnswer] | None = None) -> list[Chain]:
    """The chains, each Prometheus asked answering `answers[key]` or the captured answers."""
    reports = select(cluster)
    asked = prometheuses_to_ask(cluster, reports)
    keys = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in asked]
    given = {k: (answers or {}).get(k) or answer(k) for k in keys}
    return diagnose(cluster, reports, given)


def broken_at(chain: Chain, name: str) -> Link:
    """The chain's first broken link, which must be `name`."""
    broken = chain.broken
    assert broken is not None, f"{chain.key}: every link holds"
    assert broken.name == name, f"{chain.key}: broken at {broken.name}: {broken.detail}"
    return broken


def states(chain: Chain) -> dict[str, str]:
    return {link.name: link.state for link in chain.links}


# --------------------------------------------------------------------------- whole chains


def test_a_promdemo_selected_scraped_and_evaluated_holds_every_link() -> None:
    [chain] = run(facts(promdemo()))
    assert [link.name for link in chain.links] == list(LINKS)
    assert chain.healthy
    assert states(chain) == {
        "crds": OK, "children": OK, "pods": OK, "selected": OK,
        "targets": OK, "rules": OK, "alerts": OK, "heal": OK,
    }  # fmt: skip
    assert chain.link("selected").detail.startswith(f"selected by Prometheus {KPS_ALL}")
    assert chain.link("targets").detail.startswith(f"1/1 up in Prometheus {KPS_ALL}")
    rules = chain.link("rules").detail
    assert "promdemo.alerts and promdemo.recording loaded (11 rules, every 1s)" in rules
    # Two alerts are pending in the captured answer: shown, not firing (LowSuccessRate is
    # about the job, not one instance).
    assert chain.link("alerts").detail == (
        "pending: NoSuccessOrders (127.0.0.1:45075), LowSuccessRate"
    )


def test_kube_prometheus_stack_defaults_break_at_selected_with_the_label_to_add() -> None:
    cluster = facts(promdemo(), prometheuses=[fixture("kube-prometheus-stack.yaml")])
    [chain] = run(cluster)
    broken = broken_at(chain, "selected")
    assert broken.detail == (
        f"Prometheus {KPS} selects ServiceMonitors and PrometheusRules labelled release=prometheus"
    )
    assert broken.fix == (
        "add spec.monitoring.labels: {release: prometheus} (`kubectl -n demo patch promdemo shop"
        ' --type merge -p \'{"spec":{"monitoring":{"labels":{"release":"prometheus"}}}}\'`)'
    )
    assert states(chain)["targets"] == states(chain)["rules"] == SKIPPED
    # Nobody selects it: no Prometheus is asked.
    assert prometheuses_to_ask(cluster, select(cluster)) == []


def test_the_labels_the_promdemo_already_has_make_kube_prometheus_stack_select_it() -> None:
    pd = promdemo(spec={"monitoring": {"labels": {"release": "prometheus"}}})
    [chain] = run(facts(pd, prometheuses=[fixture("kube-prometheus-stack.yaml")]))
    assert chain.healthy, chain.broken
    assert (
        chain.link("selected").detail
        == f"selected by Prometheus {KPS} (ServiceMonitor and PrometheusRule)"
    )


def test_the_live_servicemonitor_labels_count_not_the_spec() -> None:
    # The spec asks for the label but the operator has not applied it yet.
    pd = promdemo(spec={"monitoring": {"labels": {"release": "prometheus"}}})
    objects = children(pd)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        del objects[(kind, "demo", "shop")]["metadata"]["labels"]["release"]
    [chain] = run(facts(pd, objects=objects, prometheuses=[fixture("kube-prometheus-stack.yaml")]))
    broken = broken_at(chain, "selected")
    assert (broken.fix or "").startswith(
        "spec.monitoring.labels already has {release: prometheus} but the ServiceMonitor and"
        " PrometheusRule do not carry it yet: the operator applies it at its next reconcile"
    )


def test_without_the_monitoring_crds_the_crds_link_breaks_first() -> None:
    pd = promdemo()
    objects = {k: v for k, v in children(pd).items() if k[0] in ("Deployment", "Service", "Secret")}
    [chain] = run(facts(pd, served=frozenset(), prometheuses=[], objects=objects))
    broken = broken_at(chain, "crds")
    assert "does not serve ServiceMonitor, PrometheusRule and Prometheus" in broken.detail
    assert "helm install prometheus prometheus-community/kube-prometheus-stack" in (
        broken.fix or ""
    )
    # The children the operator can create are there; the others are not expected.
    assert chain.link("children").state == OK
    assert chain.link("selected").state == SKIPPED


def test_monitoring_turned_off_needs_no_crds_and_selects_nothing() -> None:
    pd = promdemo(spec={"monitoring": {"serviceMonitor": False, "prometheusRule": False}})
    [chain] = run(facts(pd, served=frozenset(), prometheuses=[]))
    assert chain.healthy
    assert states(chain) == {
        "crds": OK, "children": OK, "pods": OK, "selected": SKIPPED,
        "targets": SKIPPED, "rules": SKIPPED, "alerts": SKIPPED, "heal": OK,
    }  # fmt: skip


# --------------------------------------------------------------------------- children and pods


def test_missing_children_of_a_promdemo_never_reconciled_point_at_the_operator() -> None:
    pd = promdemo()
    pd["status"] = {}
    [chain] = run(facts(pd, objects={}))
    broken = broken_at(chain, "children")
    assert broken.detail.startswith(
        "missing: Deployment shop, Service shop, Secret shop-reset-token"
    )
    assert "has not reconciled PromDemo demo/shop" in (broken.fix or "")
    assert "kubectl -n promdemo-system logs deploy/promdemo-operator" in (broken.fix or "")


def test_a_child_missing_after_reconcile_says_the_operator_recreates_it() -> None:
    pd = promdemo()
    objects = children(pd)
    del objects[("Service", "demo", "shop")]
    [chain] = run(facts(pd, objects=objects))
    broken = broken_at(chain, "children")
    assert broken.detail == "missing: Service shop"
    assert "Service shop is missing" in (broken.fix or "")


def test_a_refused_spec_breaks_children_with_the_operators_message() -> None:
    pd = promdemo(
        status={
            "conditions": [
                {"type": "SpecValid", "status": "False", "reason": "InvalidSpec",
                 "message": "spec.replicas: must be at most 20"},
            ]
        }
    )  # fmt: skip
    [chain] = run(facts(pd, objects={}))
    broken = broken_at(chain, "children")
    assert broken.detail == "the operator refuses the spec: spec.replicas: must be at most 20"
    assert "kubectl -n demo edit promdemo shop" in (broken.fix or "")


def test_children_the_user_may_not_read_are_not_checked_and_do_not_break() -> None:
    pd = promdemo()
    objects = {k: v for k, v in children(pd).items() if k[0] != "Secret"}
    [chain] = run(facts(pd, objects=objects, unreadable={"Secret": "forbidden"}))
    assert chain.link("children").state == OK
    assert chain.link("children").detail.endswith("; not checked: Secret (forbidden)")


def test_pods_not_ready_break_with_the_deployment_condition() -> None:
    pd = promdemo(spec={"replicas": 2})
    objects = children(pd, ready=False)
    objects[("Deployment", "demo", "shop")]["status"] = {
        "readyReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."},
        ],
    }  # fmt: skip
    [chain] = run(facts(pd, objects=objects))
    broken = broken_at(chain, "pods")
    assert broken.detail == (
        "1/2 ready (MinimumReplicasUnavailable: Deployment does not have minimum availability.)"
    )
    assert "kubectl -n demo get pods -l app.kubernetes.io/instance=shop" in (broken.fix or "")


def test_a_promdemo_scaled_to_zero_has_nothing_to_scrape() -> None:
    [chain] = run(facts(promdemo(spec={"replicas": 0})))
    assert chain.link("pods").state == NOTE
    assert chain.link("targets").state == SKIPPED
    assert chain.healthy


# --------------------------------------------------------------------------- selection inputs


def test_the_namespace_labels_read_decide_a_namespace_selector() -> None:
    prom = fixture("kube-prometheus-stack-select-all.yaml")
    prom["spec"]["serviceMonitorNamespaceSelector"] = {"matchLabels": {"team": "shop"}}
    prom["spec"]["ruleNamespaceSelector"] = {"matchLabels": {"team": "shop"}}
    pd = promdemo()
    [chain] = run(facts(pd, prometheuses=[prom]))
    broken = broken_at(chain, "selected")
    assert broken.fix == "label the namespace: kubectl label namespace demo team=shop"
    [chain] = run(facts(pd, prometheuses=[prom], namespace_labels={"demo": {"team": "shop"}}))
    assert chain.healthy


def test_unreadable_namespace_labels_are_said_with_the_verdict() -> None:
    [chain] = run(facts(promdemo(), unreadable={"Namespace": "forbidden"}))
    assert chain.link("selected").detail.endswith(
        "(labels of namespace demo not readable: forbidden; only kubernetes.io/metadata.name"
        " assumed)"
    )


def test_prometheus_objects_the_user_may_not_list_break_selected_with_a_way_around() -> None:
    cluster = facts(promdemo(), unreadable={"Prometheus": "forbidden"})
    cluster = ClusterFacts(**{**cluster.__dict__, "prometheuses": None})
    [chain] = run(cluster)
    broken = broken_at(chain, "selected")
    assert broken.detail == "cannot list the Prometheus objects (forbidden)"
    assert "promdemo check-selection" in (broken.fix or "")


# --------------------------------------------------------------------------- what Prometheus says


def test_a_target_down_breaks_targets_with_its_scrape_error() -> None:
    [chain] = run(facts(promdemo(namespace="other")))
    broken = broken_at(chain, "targets")
    assert broken.detail.startswith(f"0/1 up in Prometheus {KPS_ALL}")
    assert "connect: connection refused" in broken.detail
    assert "http://127.0.0.1:40499/metrics" in (broken.fix or "")


def test_no_target_at_all_says_the_servicemonitor_is_not_loaded_and_why_it_may_stay_so() -> None:
    [chain] = run(facts(promdemo(name="cart")))
    broken = broken_at(chain, "targets")
    assert 'has no target {namespace="demo", job="cart"}' in broken.detail
    assert "ServiceAccount must be allowed to list" in (broken.fix or "")
    # Rules of the other PromDemo are not this one's.
    assert chain.link("rules").detail.endswith(
        "has not loaded promdemo.recording and promdemo.alerts"
    )


def test_a_rule_that_fails_to_evaluate_breaks_rules() -> None:
    rules = copy.deepcopy(RULES)
    group = next(g for g in rules["data"]["groups"] if g["file"].endswith("demo-shop.yml"))
    group["rules"][0].update(health="err", lastError="many-to-many matching not allowed")
    [chain] = run(facts(promdemo()), {KPS_ALL: answer(KPS_ALL, rules=rules)})
    broken = broken_at(chain, "rules")
    assert "evaluation fails: InventoryNegative: many-to-many matching not allowed" in broken.detail


def test_a_firing_alert_is_a_note_not_a_broken_link() -> None:
    rules = copy.deepcopy(RULES)
    group = next(g for g in rules["data"]["groups"] if g["file"].endswith("demo-shop.yml"))
    group["rules"][0]["alerts"] = [
        {"labels": {"alertname": "InventoryNegative", "pod": "shop-7d9f-abcde"},
         "state": "firing", "activeAt": "2026-08-01T10:00:00Z", "value": "-3e+00"},
    ]  # fmt: skip
    [chain] = run(facts(promdemo()), {KPS_ALL: answer(KPS_ALL, rules=rules)})
    assert chain.healthy
    assert chain.link("alerts").state == NOTE
    assert chain.link("alerts").detail == (
        "firing: InventoryNegative (shop-7d9f-abcde);"
        " pending: NoSuccessOrders (127.0.0.1:45075), LowSuccessRate"
    )


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (
            '/api/v1/targets: HTTP 403: services "prometheus-operated:web" is forbidden',
            "ask for get on services/proxy in namespace monitoring",
        ),
        (
            '/api/v1/targets: HTTP 503: no endpoints available for service "prometheus-operated"',
            "no Prometheus pod answers behind Service monitoring/prometheus-operated",
        ),
        ("/api/v1/targets: no answer within 10s", "kubectl -n monitoring port-forward"),
    ],
)
def test_a_prometheus_that_cannot_be_asked_breaks_targets_with_what_to_do(
    error: str, advice: str
) -> None:
    errors = {"targets": error, "rules": error}
    unreachable = answer(KPS_ALL, targets=None, rules=None, errors=errors)
    [chain] = run(facts(promdemo()), {KPS_ALL: unreachable})
    broken = broken_at(chain, "targets")
    assert error in broken.detail
    assert advice in (broken.fix or "")
    assert chain.link("rules").state == BROKEN
    assert chain.link("alerts").state == SKIPPED


def test_a_prometheus_given_by_url_answers_for_every_promdemo() -> None:
    cluster = facts(promdemo(), promdemo(namespace="other"))
    direct = PrometheusAnswer("http://127.0.0.1:9090", targets=TARGETS, rules=RULES)
    demo, other = diagnose(cluster, select(cluster), {}, direct=direct)
    assert demo.healthy
    assert demo.link("targets").detail == "1/1 up in Prometheus http://127.0.0.1:9090"
    broken_at(other, "targets")


def test_notes_on_how_a_prometheus_was_asked_are_shown() -> None:
    shared = PrometheusAnswer(
        KPS_ALL, targets=TARGETS, rules=RULES, namespace="monitoring",
        service="prometheus-operated", notes=("asked through prometheus-operated, shared",),
    )  # fmt: skip
    [chain] = run(facts(promdemo()), {KPS_ALL: shared})
    assert "(asked through prometheus-operated, shared)" in chain.link("targets").detail


# --------------------------------------------------------------------------- heal and cost


def test_the_last_heal_is_read_from_the_status() -> None:
    pd = promdemo(
        status={
            "healCount": 3,
            "lastHeal": {"pod": "shop-7d9f-abcde", "before": -4, "after": 100,
                         "time": "2026-08-01T10:00:05Z"},
        }
    )  # fmt: skip
    [chain] = run(facts(pd))
    assert chain.link("heal").detail == (
        "3 heals; last: pod shop-7d9f-abcde, inventory -4 → 100, at 2026-08-01T10:00:05Z"
        " (auto-heal on)"
    )


def test_one_prometheus_is_asked_once_for_a_hundred_promdemos() -> None:
    pds = [promdemo(name=f"shop{i}") for i in range(100)]
    select_all = fixture("kube-prometheus-stack-select-all.yaml")
    default = fixture("kube-prometheus-stack.yaml")  # selects none of them
    cluster = facts(*pds, prometheuses=[select_all, default])
    asked = prometheuses_to_ask(cluster, select(cluster))
    assert [p["metadata"]["name"] for p in asked] == [select_all["metadata"]["name"]]
    chains = run(cluster)
    assert len(chains) == 100
    assert {c.broken.name for c in chains if c.broken} == {"targets"}  # no such targets
