"""Watches, not polls: the real operator against kmock, its safety-net resync set to hours.

What the operator learns comes from its watches, and only writes reach the API
server at rest: a deleted child is back, and Deployment readiness reaches the
PromDemo's status, long before any resync could run; a heal check makes no
request at all (counted at the emulated API); a restarted operator rebuilds its
indexes from the watches and keeps the cooldowns it left in status.

The heal tests play the kubelet as `test_heal_operator.py` does: real order-service
processes on 127.0.0.2/127.0.0.3 and their Pod objects in kmock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.operator import scenarios as sc
from tests.operator.test_heal_operator import (
    NAME,
    NS,
    heal_checks,
    promdemo,
    reset_token,
    status,
    wait_status,
)
from tests.support.kmock_cluster import ApiCall, KmockCluster
from tests.support.oversold_app import APP_ENV, inventory, oversell, resets_counted
from tests.support.processes import wait_until

pytestmark = pytest.mark.operator

#: Far longer than any test: whatever happens, happens without the resync.
HOURS = 6 * 3600.0


def operator_requests(cluster: KmockCluster, since: int) -> list[ApiCall]:
    """The operator's requests after request number `since`, watch streams left out."""
    return [c for c in cluster.api_calls()[since:] if c.client == "operator" and c.verb != "watch"]


def test_a_deleted_child_is_back_before_any_resync_could_run(kmock_cluster: KmockCluster) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator(resync_seconds=HOURS)
    sc.scenario_create(cluster, op, "shop")
    token = sc.token_of(cluster, "shop")
    for kind, resource in sc.CHILD_RESOURCES.items():
        name = sc.child_name(kind, "shop")
        before = (cluster.get(resource, NS, name) or {})["metadata"]["uid"]
        assert cluster.delete(resource, NS, name)
        sc.wait(
            lambda r=resource, n=name, b=before: (cluster.get(r, NS, n) or {})
            .get("metadata", {}).get("uid") not in (None, b),
            f"{kind} {name} re-created", op,
        )  # fmt: skip
    pd = cluster.get(sc.PROMDEMOS, NS, "shop") or {}
    sc.assert_children_match_render(cluster, pd, sc.children(cluster, "shop"))
    assert sc.token_of(cluster, "shop") not in (None, token), "a new Secret, a new token"
    reads = [c for c in cluster.api_calls() if c.client == "operator" and c.verb == "get"]
    assert reads == [], f"the operator read objects (a resync ran?): {reads}"


def test_readiness_reaches_the_status_without_a_resync(kmock_cluster: KmockCluster) -> None:
    op = kmock_cluster.start_operator(resync_seconds=HOURS)
    sc.scenario_create(kmock_cluster, op, "shop")
    sc.scenario_deployment_ready(kmock_cluster, op, "shop")


def test_a_converged_promdemo_costs_no_request(kmock_cluster: KmockCluster) -> None:
    """At rest (no pods, nothing changing) the operator sends nothing, heal loop included."""
    cluster = kmock_cluster
    op = cluster.start_operator(resync_seconds=HOURS)
    cluster.create(sc.promdemo("shop", {"autoHeal": {"enabled": True, "interval": "1s"}}))
    sc.wait_observed(cluster, "shop", op)
    sc.wait_children(cluster, "shop", tuple(sc.CHILD_RESOURCES), op)
    wait_until(lambda: heal_checks_of(op, "shop") >= 2, timeout=60, what="two heal checks")
    mark = len(cluster.api_calls())
    checks = heal_checks_of(op, "shop")
    wait_until(lambda: heal_checks_of(op, "shop") >= checks + 5, timeout=60, what="5 checks")
    assert operator_requests(cluster, mark) == []


def heal_checks_of(op: Any, name: str) -> float:
    return op.metric_value("promdemo_heal_checks_total", {"namespace": NS, "promdemo": name})


@pytest.mark.integration
def test_a_heal_check_makes_no_api_request(
    kmock_cluster: KmockCluster, start_app: Callable[..., Any]
) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator(resync_seconds=HOURS)
    cluster.create(promdemo({"interval": "1s", "for": "0s", "podAccess": "podIP"}))
    env = {**APP_ENV, "PROMDEMO_RESET_TOKEN": reset_token(cluster)}
    _, url_a = start_app(env=env, host="127.0.0.2")
    _, url_b = start_app(env=env, host="127.0.0.3")
    cluster.store_pod(NS, NAME, "shop-a", url_a)
    cluster.store_pod(NS, NAME, "shop-b", url_b)
    wait_status(
        cluster, op, lambda s: set(s.get("inventory") or {}) == {"shop-a", "shop-b"}, "inventory"
    )
    mark = len(cluster.api_calls())
    checks = heal_checks(op)
    wait_until(lambda: heal_checks(op) >= checks + 5, timeout=60, what="five more checks")
    assert operator_requests(cluster, mark) == [], "a heal check asked the API server"
    assert set(status(cluster)["inventory"]) == {"shop-a", "shop-b"}


@pytest.mark.integration
def test_a_restart_rebuilds_the_indexes_and_keeps_the_cooldowns(
    kmock_cluster: KmockCluster, start_app: Callable[..., Any]
) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator(resync_seconds=HOURS)
    cluster.create(
        promdemo({"interval": "1s", "for": "0s", "cooldown": "10m", "podAccess": "podIP"})
    )
    token = reset_token(cluster)
    env = {**APP_ENV, "PROMDEMO_RESET_TOKEN": token}
    _, url_a = start_app(env=env, host="127.0.0.2")
    _, url_b = start_app(env=env, host="127.0.0.3")
    cluster.store_pod(NS, NAME, "shop-a", url_a)
    cluster.store_pod(NS, NAME, "shop-b", url_b)
    oversell(url_a, token=token)
    wait_status(cluster, op, lambda s: s.get("healCount") == 1, "the first reset")
    assert resets_counted(url_a) == 1

    cluster.stop_operator(op)
    oversell(url_a, token=token)  # negative again while no operator runs
    mark = len(cluster.api_calls())
    op = cluster.start_operator(resync_seconds=HOURS, log_name="operator-restarted.log")
    # The pods are known again from the watches alone: A's new value reaches the status.
    wait_status(
        cluster, op, lambda s: (s.get("inventory") or {}).get("shop-a", 0) < 0,
        "the restarted operator to read A's negative inventory",
    )  # fmt: skip
    wait_until(lambda: heal_checks(op) >= 4, timeout=60, what="four checks after the restart")
    assert inventory(url_a) < 0, "A was reset again within the cooldown"
    assert resets_counted(url_a) == 1
    assert status(cluster)["healCount"] == 1
    calls = operator_requests(cluster, mark)
    reads = [c for c in calls if c.verb == "get"]
    assert reads == [], f"the restarted operator read objects one by one: {reads}"
    lists = sorted({c.resource for c in calls if c.verb == "list"})
    assert "pods" in lists, "the pods' index was not rebuilt from a list"
    writes = {(c.verb, c.resource) for c in calls if c.verb not in ("list",)}
    assert writes <= {("patch", "promdemos/status"), ("create", "events")}, writes
