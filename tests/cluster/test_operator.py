"""The real operator, installed from install.yaml, against the real control plane.

The operator runs as its own Deployment's pod (kubelet stand-in), authenticated by
its ServiceAccount's token; the app runs as the pods kube-controller-manager makes
of the operator's Deployment. Each test works in a namespace of its own, and uses
kubectl as a user would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.cluster import OPERATOR_NAMESPACE, get_json, ready, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.oversold_app import inventory, oversell
from tests.support.promdemos import (
    HEAL_SPEC,
    app_pods,
    available,
    events,
    gone,
    new_namespace,
    pd,
    promdemo,
    reset_token,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SAMPLE = "manifests/samples/minimal.yaml"


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    """kubectl's table as rows by column name (cells cut at the header's columns: an
    empty cell stays empty)."""
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)}
            for line in lines[1:]]  # fmt: skip


def test_the_sample_becomes_ready_pods_and_kubectl_shows_it(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = new_namespace(cp, "sample")
    cp.kubectl("apply", "-n", ns, "-f", SAMPLE)
    wait(lambda: available(cp, ns, "shop", 1), "shop Available with 1 ready replica",
         kubelet=kubelet)  # fmt: skip
    # Deployment → ReplicaSet → Pod, made by the controller manager, run by the kubelet.
    replicasets = get_json(cp, "replicasets", "-n", ns)["items"]
    assert [rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets] == ["shop"]
    (pod,) = app_pods(cp, ns, "shop")
    ip = pod["status"]["podIP"]
    assert not ip.startswith("127.")
    assert httpx.get(f"http://{ip}:8080/inventory", timeout=5).json()["inventory"] == 100

    # The table is the server's (the CRD's printer columns), as a user sees it.
    table = cp.kubectl("get", "pd", "-n", ns).stdout.splitlines()
    assert table[0].split() == [
        "NAME", "REPLICAS", "READY", "LOWEST-INVENTORY", "HEALS", "SELECTED", "SCRAPED",
        "EVALUATED", "P95", "SUCCESS", "AGE",
    ], table  # fmt: skip
    assert table[1].split()[:3] == ["shop", "1", "1"], table
    wide = cp.kubectl("get", "pd", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-5:] == ["TARGETS-UP", "REQ/S", "AUTO-HEAL", "IMAGE", "AGE"], wide
    row = table_rows(wide)[0]
    assert (row["NAME"], row["AUTO-HEAL"]) == ("shop", "true"), wide
    assert row["IMAGE"] == "ghcr.io/promdemo/promdemo:0.1.0", wide
    explain = cp.kubectl("explain", "promdemo.spec").stdout
    assert "KIND:       PromDemo" in explain or "KIND:     PromDemo" in explain, explain
    for field in ("replicas", "autoHeal", "monitoring", "app"):
        assert f"\n  {field}\t" in explain, explain

    # The scale subresource: kubectl scale pd → the Deployment → three ready pods.
    cp.kubectl("scale", "pd/shop", "-n", ns, "--replicas=3")
    wait(lambda: available(cp, ns, "shop", 3), "3 ready replicas", kubelet=kubelet)
    ips = {p["status"]["podIP"] for p in app_pods(cp, ns, "shop")}
    assert len(ips) == 3
    table = cp.kubectl("get", "pd", "shop", "-n", ns).stdout.splitlines()
    assert table[1].split()[:3] == ["shop", "3", "3"], table
    deployment = get_json(cp, "deployment", "shop", "-n", ns)
    assert deployment["spec"]["replicas"] == 3


def test_deleting_a_promdemo_garbage_collects_its_children(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = new_namespace(cp, "gc")
    cp.kubectl("apply", "-n", ns, "-f", SAMPLE)
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    cp.kubectl("delete", "pd/shop", "-n", ns, "--wait=true", timeout=120)
    # The controller manager's garbage collector, asynchronously: seconds, not at once.
    for what in ("deployment/shop", "service/shop", "secret/shop-reset-token"):
        wait(lambda what=what: gone(cp, what, "-n", ns), f"{what} collected", kubelet=kubelet)
    wait(lambda: gone(cp, "replicasets,pods", "-n", ns), "replicasets and pods collected",
         kubelet=kubelet)  # fmt: skip


def test_deleting_a_namespace_with_promdemos_finishes(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = new_namespace(cp, "doomed")
    for name in ("one", "two"):
        cp.kubectl("apply", "-f", "-", input=promdemo(name, ns))
    for name in ("one", "two"):
        wait(lambda name=name: available(cp, ns, name, 1), f"{name} Available", kubelet=kubelet)
    # kopf's finalizer on each PromDemo, the pods' graceful termination, the namespace
    # controller: all of it finishes, nothing stays Terminating.
    cp.kubectl("delete", "namespace", ns, "--wait=false")
    wait(lambda: gone(cp, "namespace", ns), f"namespace {ns} gone", kubelet=kubelet,
         timeout=150)  # fmt: skip


def wait_healed(cp: ControlPlane, kubelet: Kubelet, ns: str, pod: str, count: int) -> None:
    def healed() -> bool:
        status = pd(cp, ns, "shop").get("status") or {}
        last = status.get("lastHeal") or {}
        return status.get("healCount", 0) >= count and last.get("pod") == pod

    wait(healed, f"heal #{count} of {pod}", kubelet=kubelet)


def test_a_negative_pod_is_healed_and_a_new_pod_followed(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = new_namespace(cp, "heal")
    cp.kubectl("apply", "-f", "-", input=promdemo("shop", ns, HEAL_SPEC))
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    token = reset_token(cp, ns, "shop")
    (pod,) = app_pods(cp, ns, "shop")
    url = f"http://{pod['status']['podIP']}:8080"
    oversell(url, token=token)
    wait_healed(cp, kubelet, ns, pod["metadata"]["name"], 1)
    # Orders still in flight at the reset may take it below zero again: healed again.
    wait(lambda: inventory(url) >= 0, "the pod's inventory back at zero or more", kubelet=kubelet)
    wait(
        lambda: any(e.get("reason") == "InventoryReset" for e in events(cp, ns, "shop")),
        "the InventoryReset Event",
        kubelet=kubelet,
    )

    # The pod is deleted; its replacement has a new name and a new IP, and the heal loop
    # follows it (it reads the pods from its watch, not from a list made at start).
    cp.kubectl("delete", "pod", pod["metadata"]["name"], "-n", ns, "--wait=false")

    def replaced() -> list[dict[str, Any]]:
        return [p for p in app_pods(cp, ns, "shop")
                if p["metadata"]["name"] != pod["metadata"]["name"] and ready(p)]  # fmt: skip

    wait(lambda: len(replaced()) == 1, "a new ready pod", kubelet=kubelet)
    (new,) = replaced()
    assert new["status"]["podIP"] != pod["status"]["podIP"]
    new_url = f"http://{new['status']['podIP']}:8080"
    time.sleep(2)  # at least one heal check sees the new pod before it goes negative
    oversell(new_url, token=token)
    wait_healed(cp, kubelet, ns, new["metadata"]["name"], 2)
    wait(lambda: inventory(new_url) >= 0, "the new pod's inventory back", kubelet=kubelet)


def test_a_verb_missing_from_the_cluster_role_is_a_reconcile_failure(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    """manifests/base/rbac.yaml is what the real RBAC authorizer checks: take `create`
    on Secrets and Services away and the operator says so on the PromDemo."""
    cp = operator
    role = get_json(cp, "clusterrole", "promdemo-operator")
    original = json.dumps(role)
    rules = role["rules"]
    (core_children,) = [r for r in rules if "services" in r.get("resources", [])]
    core_children["verbs"] = [v for v in core_children["verbs"] if v != "create"]
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        role["metadata"].pop(key, None)
    cp.kubectl("replace", "-f", "-", input=json.dumps(role))
    try:
        ns = new_namespace(cp, "rbac")
        cp.kubectl("apply", "-f", "-", input=promdemo("shop", ns))

        def failure() -> dict[str, Any] | None:
            found = [e for e in events(cp, ns, "shop") if e.get("reason") == "ReconcileFailed"]
            return found[0] if found else None

        wait(lambda: failure() is not None, "a ReconcileFailed Event", kubelet=kubelet)
        message = failure()["message"]  # type: ignore[index]
        assert message.startswith("403 Forbidden"), message
        assert (
            'User "system:serviceaccount:promdemo-system:promdemo-operator" cannot create '
            'resource "secrets" in API group "" in the namespace "rbac"'
        ) in message
        assert gone(cp, "secret/shop-reset-token", "-n", ns)
    finally:
        restored = json.loads(original)
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            restored["metadata"].pop(key, None)
        cp.kubectl("replace", "-f", "-", input=json.dumps(restored))
    # The operator pod keeps running through it (a 403 is a status, not a crash).
    pods = get_json(cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in pods)
