"""The reconcile's status (core/reconcile_status.py): its conditions, what changed, what is news."""

from __future__ import annotations

from promdemo_operator.core.reconcile_status import (
    available_condition,
    condition,
    find_condition,
    invalid_spec_status,
    merge_conditions,
    monitoring_condition,
    monitoring_transition,
    reconciled_status,
    spec_newly_invalid,
    status_changes,
)

UID = "6a1e2c3d-0000-4000-8000-000000000002"


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
    assert "servicemonitors" in missing["message"]
    assert monitoring_condition(set(), [])["reason"] == "MonitoringDisabled"


def test_status_changes_only_lists_what_differs() -> None:
    assert status_changes({"a": 1, "b": 2, "heal": 5}, {"a": 1, "b": 3}) == {"b": 3}


def test_a_reconciled_status_reports_readiness_and_keeps_what_is_not_ours() -> None:
    current = {"healCount": 3, "conditions": [{"type": "Healing", "status": "True"}]}
    monitoring = monitoring_condition({"ServiceMonitor"}, [])
    deployment = {"status": {"replicas": 2, "readyReplicas": 1}}
    wanted = reconciled_status(
        current, name="shop", generation=4, desired_replicas=2, deployment=deployment,
        monitoring=monitoring, now="T",
    )  # fmt: skip
    assert wanted["observedGeneration"] == 4
    assert (wanted["replicas"], wanted["readyReplicas"]) == (2, 1)
    assert wanted["selector"] == "app.kubernetes.io/name=promdemo,app.kubernetes.io/instance=shop"
    assert find_condition(wanted["conditions"], "Healing") == current["conditions"][0]
    assert find_condition(wanted["conditions"], "Available")["status"] == "False"
    assert "healCount" not in wanted
    # Readiness arrives: only that is patched, and the condition flips.
    current = {**current, **wanted}
    deployment = {"status": {"replicas": 2, "readyReplicas": 2}}
    again = reconciled_status(
        current, name="shop", generation=4, desired_replicas=2, deployment=deployment,
        monitoring=monitoring, now="T2",
    )  # fmt: skip
    assert set(status_changes(current, again)) == {"readyReplicas", "conditions"}
    assert find_condition(again["conditions"], "Available")["lastTransitionTime"] == "T2"
    no_status = reconciled_status(
        {}, name="shop", generation=1, desired_replicas=1, deployment=None,
        monitoring=monitoring, now="T",
    )  # fmt: skip
    assert (no_status["replicas"], no_status["readyReplicas"]) == (0, 0)


def test_invalid_spec_status_and_when_it_is_news() -> None:
    wanted = invalid_spec_status({}, generation=2, message="bad", now="T")
    c = find_condition(wanted["conditions"], "SpecValid")
    assert (c["status"], c["reason"], c["message"]) == ("False", "InvalidSpec", "bad")
    assert wanted["observedGeneration"] == 2
    assert spec_newly_invalid({}, "bad")
    assert not spec_newly_invalid(wanted, "bad")
    assert spec_newly_invalid(wanted, "worse")


def test_monitoring_transitions() -> None:
    missing = monitoring_condition({"ServiceMonitor"}, ["ServiceMonitor"])
    applied = monitoring_condition({"ServiceMonitor"}, [])
    assert monitoring_transition({}, missing) == "warning"
    assert monitoring_transition({}, applied) is None
    before = {"conditions": [{**missing, "lastTransitionTime": "T"}]}
    assert monitoring_transition(before, missing) is None
    assert monitoring_transition(before, applied) == "normal"
