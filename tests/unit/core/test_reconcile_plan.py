"""core/reconcile_plan.py: what a reconcile applies or deletes, and when it looks again."""

from __future__ import annotations

from typing import Any

from promdemo_operator.core import render
from promdemo_operator.core.reconcile_plan import (
    GARBAGE_COLLECTION_RETRY_SECONDS,
    NOT_OWNED_RETRY_SECONDS,
    PERMANENT_RETRY_SECONDS,
    TRANSIENT_RETRY_SECONDS,
    children_of,
    children_to_apply,
    failure_retry_seconds,
    monitoring_plan,
    retry_after,
    writes_to_remember,
)
from promdemo_operator.core.spec import parse_spec
from tests.support.applied_children import Child, held_by

BOTH = ("ServiceMonitor", "PrometheusRule")


def rendered(**monitoring: Any) -> list[dict[str, Any]]:
    spec = parse_spec({"monitoring": monitoring})
    return render.render_children("shop", "demo", spec, token="t")


def kinds(children: list[dict[str, Any]]) -> list[str]:
    return [c["kind"] for c in children]


def test_everything_is_applied_in_render_order_when_the_monitoring_kinds_are_served():
    children = rendered()
    plan = monitoring_plan(kinds(children), BOTH)
    assert plan.wanted == set(BOTH)
    assert (plan.missing, plan.switched_off) == ((), ())
    applied = kinds(children_to_apply(children, plan))
    assert applied == kinds(children)
    assert applied.index("Secret") < applied.index("Deployment")  # the Deployment mounts it


def test_without_the_monitoring_crds_the_app_is_still_applied():
    children = rendered()
    plan = monitoring_plan(kinds(children), ())
    assert plan.missing == ("PrometheusRule", "ServiceMonitor")
    assert kinds(children_to_apply(children, plan)) == ["Secret", "Deployment", "Service"]
    only_rules = monitoring_plan(kinds(children), ["PrometheusRule"])
    assert only_rules.missing == ("ServiceMonitor",)
    assert "PrometheusRule" in kinds(children_to_apply(children, only_rules))


def test_monitoring_switched_off_in_the_spec_is_deleted_where_served():
    children = rendered(serviceMonitor=False)
    plan = monitoring_plan(kinds(children), BOTH)
    assert plan.wanted == {"PrometheusRule"}
    assert plan.switched_off == ("ServiceMonitor",)
    assert "ServiceMonitor" not in kinds(children_to_apply(children, plan))

    off = rendered(serviceMonitor=False, prometheusRule=False)
    assert monitoring_plan(kinds(off), BOTH).switched_off == ("PrometheusRule", "ServiceMonitor")
    # A kind the API server does not serve has no object to delete: nothing is asked.
    assert monitoring_plan(kinds(off), ["PrometheusRule"]).switched_off == ("PrometheusRule",)
    assert monitoring_plan(kinds(off), ()).switched_off == ()


def test_a_reconcile_with_nothing_in_the_way_waits_for_events():
    results = [Child("Deployment", "shop", "created"), Child("Service", "shop", "unchanged")]
    assert retry_after(results, "shop") is None


def test_a_child_in_the_way_is_looked_at_again_soon_or_slowly():
    someone_elses = Child("Service", "shop", "not_owned", {"metadata": {}})
    namesakes = Child("Deployment", "shop", "not_owned", held_by("shop"))
    assert retry_after([someone_elses], "shop") == NOT_OWNED_RETRY_SECONDS
    assert retry_after([Child("Service", "shop", "not_owned", held_by("x"))], "shop") == (
        NOT_OWNED_RETRY_SECONDS
    )
    # The garbage collector is about to remove what a deleted namesake left: look soon.
    assert retry_after([someone_elses, namesakes], "shop") == GARBAGE_COLLECTION_RETRY_SECONDS
    assert GARBAGE_COLLECTION_RETRY_SECONDS < NOT_OWNED_RETRY_SECONDS


def test_a_failed_api_call_is_retried_soon_only_when_transient():
    assert failure_retry_seconds(transient=True) == TRANSIENT_RETRY_SECONDS
    assert failure_retry_seconds(transient=False) == PERMANENT_RETRY_SECONDS
    assert TRANSIENT_RETRY_SECONDS < PERMANENT_RETRY_SECONDS


# -- the reconcile's own writes, until the watches deliver them ----------------------------


def at(version: str, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, **fields}


def test_created_patched_and_deleted_children_are_remembered_until_delivered():
    results = [
        Child("Secret", "shop-reset-token", "created", at("11")),
        Child("Deployment", "shop", "patched", at("12", spec={"replicas": 2})),
        Child("Service", "shop", "unchanged", at("5")),
        Child("ConfigMap", "shop", "not_owned", at("6")),
    ]
    known = {"Secret": None, "Deployment": at("7"), "Service": at("5"), "ServiceMonitor": at("8")}
    writes = writes_to_remember(
        results, ["ServiceMonitor"], known, namespace="demo", promdemo="shop", delivered={}
    )
    assert writes == {
        ("Secret", "demo", "shop-reset-token"): (None, at("11")),  # created: over nothing
        ("Deployment", "demo", "shop"): ("7", at("12", spec={"replicas": 2})),
        ("ServiceMonitor", "demo", "shop"): ("8", None),  # deleted
    }


def test_a_write_the_watches_already_delivered_is_not_remembered():
    results = [
        Child("Deployment", "shop", "patched", at("12")),
        Child("Service", "shop", "patched", at("13")),
    ]
    delivered = {("Deployment", "demo", "shop"): "12", ("Service", "demo", "shop"): "9"}
    writes = writes_to_remember(
        results, [], {"Deployment": at("7"), "Service": at("9")},
        namespace="demo", promdemo="shop", delivered=delivered,
    )  # fmt: skip
    assert list(writes) == [("Service", "demo", "shop")]  # the watches still hold 9


def test_a_fresh_read_forgets_the_promdemos_children_only():
    keys = [
        ("Deployment", "demo", "shop"),
        ("Secret", "demo", "shop-reset-token"),
        ("Deployment", "demo", "cart"),
        ("Deployment", "other", "shop"),
    ]
    assert children_of(keys, "demo", "shop") == keys[:2]
