"""The real operator process against kmock: what it writes, patches and reports."""

from __future__ import annotations

import pytest

from tests.operator import scenarios as sc
from tests.support.kmock_cluster import KmockCluster

pytestmark = pytest.mark.operator


def test_create_makes_five_owned_children_with_the_rendered_content(
    kmock_cluster: KmockCluster,
) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    assert op.metric_value("promdemo_reconciles_total", {"result": "success"}) >= 1
    assert op.metric_value("promdemo_reconcile_duration_seconds_count") >= 1


def test_deployment_readiness_reaches_status(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_deployment_ready(kmock_cluster, op, "shop")


def test_spec_changes_patch_the_children_and_duplicate_nothing(
    kmock_cluster: KmockCluster,
) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_update(kmock_cluster, op, "shop")


def test_a_label_dropped_from_the_spec_leaves_the_monitoring_objects(
    kmock_cluster: KmockCluster,
) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_dropped_labels_pruned(kmock_cluster, op, "shop")
    patched = {"kind": "ServiceMonitor", "action": "patched"}
    assert op.metric_value("promdemo_children_applied_total", patched) >= 1


def test_a_deleted_child_comes_back(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_child_deleted(kmock_cluster, op, "shop")


def test_hand_edits_of_children_are_patched_back(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_drift_repaired(kmock_cluster, op, "shop")


def test_heal_status_and_foreign_conditions_survive_reconciles(
    kmock_cluster: KmockCluster,
) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_status_preserved(kmock_cluster, op, "shop")


def test_restart_recreates_and_rewrites_nothing(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_create(kmock_cluster, op, "cart")
    sc.scenario_restart(kmock_cluster, op, ["shop", "cart"])


def test_without_monitoring_crds_the_app_runs_and_monitoring_follows_later(
    kmock_cluster_factory,
) -> None:
    cluster = kmock_cluster_factory(monitoring=False)
    op = cluster.start_operator()
    sc.scenario_monitoring_absent_then_added(cluster, op, "nomon")
    assert op.metric_value("promdemo_monitoring_crds_present") == 1


def test_invalid_spec_gets_a_condition_and_others_are_served(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_invalid_spec(kmock_cluster, op, "broken", "fine")
    assert op.metric_value("promdemo_reconciles_total", {"result": "invalid_spec"}) >= 1


def test_deleting_a_promdemo_releases_it(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_delete_promdemo(kmock_cluster, op, "shop")


def test_sigterm_stops_the_operator_cleanly(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator()
    assert kmock_cluster.stop_operator(op) == 0
