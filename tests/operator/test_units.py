"""The plain parts of the operator adapter and of the kmock harness (no processes)."""

from __future__ import annotations

import pytest

from promdemo_operator.handlers.reconcile import (
    available_condition,
    condition,
    merge_conditions,
    monitoring_condition,
    status_changes,
)
from promdemo_operator.kube import KINDS, MonitoringSupport, is_subset, secret_value
from tests.support.kmock_cluster import _match_selector, _merge_patch, _verb, resource_path

pytestmark = pytest.mark.operator


def test_is_subset_ignores_server_added_fields_but_not_changes() -> None:
    desired = {"spec": {"replicas": 2, "containers": [{"name": "app", "image": "a"}]}}
    actual = {
        "spec": {
            "replicas": 2,
            "containers": [{"name": "app", "image": "a", "terminationMessagePath": "/dev/x"}],
            "revisionHistoryLimit": 10,
        }
    }
    assert is_subset(desired, actual)
    assert not is_subset({"spec": {"replicas": 3}}, actual)
    assert not is_subset({"spec": {"containers": []}}, actual)
    assert is_subset({"x": 1}, {"x": 1.0})
    assert not is_subset({"x": True}, {"x": 1})


def test_merge_conditions_keeps_transition_times_and_foreign_types() -> None:
    old = [
        {**condition("Available", False, "R", "m"), "lastTransitionTime": "T0"},
        {"type": "Healing", "status": "True", "reason": "X", "lastTransitionTime": "T0"},
    ]
    new = merge_conditions(
        old,
        [condition("Available", False, "R2", "m2"), condition("SpecValid", True, "S", "ok")],
        now="T1",
    )
    assert [c["type"] for c in new] == ["Available", "Healing", "SpecValid"]
    assert new[0]["lastTransitionTime"] == "T0"  # status unchanged
    assert new[0]["reason"] == "R2"
    assert new[1] == old[1]
    assert new[2]["lastTransitionTime"] == "T1"
    flipped = merge_conditions(new, [condition("Available", True, "R", "m")], now="T2")
    assert flipped[0]["lastTransitionTime"] == "T2"


def test_conditions_say_why() -> None:
    assert available_condition(0, 0)["status"] == "True"
    assert available_condition(2, 1)["status"] == "False"
    assert available_condition(2, 2)["reason"] == "ReplicasReady"
    missing = monitoring_condition({"ServiceMonitor", "PrometheusRule"}, ["ServiceMonitor"])
    assert (missing["status"], missing["reason"]) == ("False", "MonitoringCRDsMissing")
    assert monitoring_condition(set(), [])["reason"] == "MonitoringDisabled"


def test_status_changes_only_lists_what_differs() -> None:
    assert status_changes({"a": 1, "b": 2, "heal": 5}, {"a": 1, "b": 3}) == {"b": 3}


def test_monitoring_support_and_paths() -> None:
    assert MonitoringSupport(frozenset({"ServiceMonitor"})).missing() == ["PrometheusRule"]
    assert KINDS["Deployment"].path("ns", "x") == "/apis/apps/v1/namespaces/ns/deployments/x"
    assert KINDS["Secret"].path("ns") == "/api/v1/namespaces/ns/secrets"
    assert secret_value({"data": {"token": "aGk="}}, "token") == "hi"
    assert secret_value({"stringData": {"token": "hi"}}, "token") == "hi"
    assert secret_value({}, "token") is None


def test_harness_helpers() -> None:
    assert _verb("GET", None, {"watch": "true"}) == "watch"
    assert _verb("GET", "x", {}) == "get"
    assert _verb("GET", None, {}) == "list"
    assert _verb("DELETE", None, {}) == "deletecollection"
    assert _match_selector("a=b,c", {"a": "b", "c": ""})
    assert not _match_selector("a!=b", {"a": "b"})
    assert _match_selector("!x", {"a": "b"})
    assert _merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {
        "a": {"c": 2},
        "l": [2],
    }
    assert resource_path("v1/pods", "ns", "p", "proxy") == "/api/v1/namespaces/ns/pods/p/proxy"
    assert (
        resource_path("promdemo.dev/v1alpha1/promdemos") == "/apis/promdemo.dev/v1alpha1/promdemos"
    )
