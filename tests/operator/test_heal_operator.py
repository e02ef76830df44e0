"""The real operator heals real app processes that stand in for pods (kmock plays the API).

The test plays the kubelet: for the PromDemo's Deployment it starts order-service
processes on 127.0.0.2 and 127.0.0.3 with the token from the Secret the operator
created, and stores their Pod objects (selector labels, `status.podIP`, the
container port named `http`, Ready) in kmock. The operator (podAccess podIP)
must reset the pod that concurrent orders drove negative, leave the other one,
post an `InventoryReset` Event and write status; a restarted operator must not
reset the same pod again within the cooldown; a pod that stops answering is
skipped and counted while the loop goes on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.kmock_cluster import (
    PROMDEMOS,
    SECRETS,
    KmockCluster,
    OperatorProcess,
    kmock_cluster,  # noqa: F401 - the fixture
    operator_log_tail,
)
from tests.support.oversold_app import APP_ENV, inventory, oversell, resets_counted
from tests.support.processes import wait_until

pytestmark = [pytest.mark.operator, pytest.mark.integration]

NS = "demo"
NAME = "shop"
SELECTOR = {"app.kubernetes.io/name": "promdemo", "app.kubernetes.io/instance": NAME}


def promdemo(auto_heal: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"replicas": 2, "autoHeal": auto_heal},
    }


def reset_token(cluster: KmockCluster) -> str:
    holder: dict[str, str] = {}

    def ready() -> bool:
        secret = cluster.get(SECRETS, NS, f"{NAME}-reset-token")
        if not secret:
            return False
        data = secret.get("data") or {}
        if data.get("token"):
            holder["token"] = base64.b64decode(data["token"]).decode()
        elif (secret.get("stringData") or {}).get("token"):
            holder["token"] = secret["stringData"]["token"]
        return "token" in holder

    wait_until(ready, timeout=60, what="the reset-token Secret")
    return holder["token"]


def status(cluster: KmockCluster) -> dict[str, Any]:
    return (cluster.get(PROMDEMOS, NS, NAME) or {}).get("status") or {}


def wait_status(
    cluster: KmockCluster, op: OperatorProcess, check: Callable[[dict], bool], what: str
) -> dict[str, Any]:
    try:
        wait_until(lambda: check(status(cluster)), timeout=90, interval=0.2, what=what)
    except TimeoutError as e:
        raise AssertionError(f"{e}\nstatus: {status(cluster)}\n{operator_log_tail(op)}") from e
    return status(cluster)


def heal_checks(op: OperatorProcess) -> float:
    return op.metric_value("promdemo_heal_checks_total", {"namespace": NS, "promdemo": NAME})


def test_operator_resets_the_negative_pod_once_across_a_restart(
    kmock_cluster: KmockCluster,  # noqa: F811
    start_app: Callable[..., Any],
) -> None:
    cluster = kmock_cluster
    op = cluster.start_operator()
    cluster.create(
        promdemo({"interval": "1s", "for": "0s", "cooldown": "10m", "podAccess": "podIP"})
    )
    token = reset_token(cluster)
    env = {**APP_ENV, "PROMDEMO_RESET_TOKEN": token}
    _, url_a = start_app(env=env, host="127.0.0.2")
    proc_b, url_b = start_app(env=env, host="127.0.0.3")
    cluster.store_pod(NS, NAME, "shop-a", url_a)
    cluster.store_pod(NS, NAME, "shop-b", url_b)
    wait_status(
        cluster, op, lambda s: set(s.get("inventory") or {}) == {"shop-a", "shop-b"}, "inventory"
    )

    # 1. concurrent orders drive A negative: the operator resets A only.
    before = resets_counted(url_a)
    oversell(url_a, token=token)  # the operator may reset A while orders are still in flight
    healed = wait_status(cluster, op, lambda s: s.get("healCount") == 1, "healCount 1")
    assert healed["lastHeal"]["pod"] == "shop-a"
    assert healed["lastHeal"]["before"] < 0
    assert healed["lastHeal"]["after"] == 5
    assert "shop-a" in healed["lastHeal"]["recentResets"]
    assert resets_counted(url_a) == before + 1
    assert resets_counted(url_b) == 0
    assert inventory(url_b) == 5
    wait_until(
        lambda: any(e.get("reason") == "InventoryReset" for e in cluster.events_for(NS, NAME)),
        timeout=60,
        what="the InventoryReset event",
    )
    event = next(e for e in cluster.events_for(NS, NAME) if e.get("reason") == "InventoryReset")
    assert "shop-a" in event["message"]
    assert "-> 5" in event["message"]
    assert (
        op.metric_value("promdemo_inventory_resets_total", {"namespace": NS, "promdemo": NAME}) == 1
    )

    # 2. restart within the cooldown, with A negative again: no second reset.
    cluster.stop_operator(op)
    oversell(url_a, token=token)
    op = cluster.start_operator(log_name="operator-restarted.log")
    wait_status(
        cluster,
        op,
        lambda s: (s.get("inventory") or {}).get("shop-a", 0) < 0,
        "the restarted operator to see A negative",
    )
    wait_until(lambda: heal_checks(op) >= 4, timeout=60, what="four checks after the restart")
    assert inventory(url_a) < 0, "the pod was reset again within the cooldown"
    assert resets_counted(url_a) == before + 1
    assert status(cluster)["healCount"] == 1

    # 3. B stops answering: skipped and counted, the loop goes on.
    proc_b.stop()
    labels = {"namespace": NS, "promdemo": NAME, "reason": "unreachable"}
    wait_until(
        lambda: op.metric_value("promdemo_heal_scrape_failures_total", labels) >= 2,
        timeout=60,
        what="unreachable pod B counted",
    )
    checks = heal_checks(op)
    wait_until(lambda: heal_checks(op) >= checks + 2, timeout=60, what="more checks")
    assert op.process.alive(), operator_log_tail(op)
    assert httpx.get(op.metrics_url, timeout=5).status_code == 200
