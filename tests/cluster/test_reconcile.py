"""Reconcile on the real control plane: what the operator writes, patches back and says.

The operator tier of record (it replaced the emulated API server's tier): the operator runs
as install.yaml deploys it, its children are served, validated, defaulted and
garbage-collected by kube-apiserver and kube-controller-manager, the app runs as
real pods (kubelet stand-in), and every request is in the API server's audit log.
The session's control plane and operator are shared with the other cluster tests
(tests/cluster/conftest.py); each test works in a namespace of its own.

What tests/cluster covers elsewhere is not repeated here: the sample, kubectl's
columns and `scale` (test_operator.py), garbage collection and namespace deletion
(test_operator.py), healing by pod IP and a replaced pod (test_operator.py), through
Alertmanager and with Prometheus's status (test_whole_chain.py), watch gaps
(test_watch_gap.py), leader election under faults (test_faults.py), a missing RBAC
verb (test_operator.py) and RBAC coverage (test_rbac_coverage.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import condition, get_json, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.oversold_app import inventory, oversell

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

OPERATOR_USER = "system:serviceaccount:promdemo-system:promdemo-operator"
#: A spec the operator refuses (the CRD's schema cannot say min <= max).
INVALID_SIMULATION = {"app": {"simulation": {"dependencyMinSeconds": 2, "dependencyMaxSeconds": 1}}}


def apply_promdemo(cp: ControlPlane, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    }))  # fmt: skip


def patch(cp: ControlPlane, what: str, namespace: str, body: Any, kind: str = "merge") -> None:
    cp.kubectl("patch", what, "-n", namespace, "--type", kind, "-p", json.dumps(body))


def pd(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cp, "promdemo", name, "-n", namespace)


def observed(cp: ControlPlane, namespace: str, name: str) -> bool:
    obj = pd(cp, namespace, name)
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def available(cp: ControlPlane, namespace: str, name: str, replicas: int) -> bool:
    obj = pd(cp, namespace, name)
    return (
        condition(obj, "Available").get("status") == "True"
        and (obj.get("status") or {}).get("readyReplicas") == replicas
    )


def ready_pods(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name}"
    pods = get_json(cp, "pods", "-n", namespace, "-l", selector)["items"]
    return [
        p for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or [])
    ]  # fmt: skip


def children(cp: ControlPlane, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    return {
        "Secret": get_json(cp, "secret", f"{name}-reset-token", "-n", namespace),
        "Deployment": get_json(cp, "deployment", name, "-n", namespace),
        "Service": get_json(cp, "service", name, "-n", namespace),
    }


def uids(kids: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {kind: obj["metadata"]["uid"] for kind, obj in kids.items()}


def token(kids: dict[str, dict[str, Any]]) -> str:
    return base64.b64decode(kids["Secret"]["data"]["token"]).decode()


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def events(cp: ControlPlane, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = get_json(cp, "events", "-n", namespace)["items"]
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
        for e in items
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def operator_requests(cp: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    """The operator's requests about objects in `namespace` (watch streams left out)."""
    return [
        e for e in cp.audit_events()
        if (e.get("user") or {}).get("username") == OPERATOR_USER
        and (e.get("objectRef") or {}).get("namespace") == namespace
        and e.get("verb") != "watch"
    ]  # fmt: skip


def test_spec_changes_and_hand_edits_reach_the_children_by_patches(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = "reconcile"
    cp.kubectl("create", "namespace", ns)
    apply_promdemo(cp, ns, "shop", {"replicas": 1, "monitoring": {"labels": {"release": "p"}}})
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    obj = pd(cp, ns, "shop")
    assert condition(obj, "SpecValid")["status"] == "True"
    # This cluster has no prometheus-operator CRDs: the app runs, monitoring says why not.
    c = condition(obj, "MonitoringReady")
    assert (c["status"], c["reason"]) == ("False", "MonitoringCRDsMissing"), c
    kids = children(cp, ns, "shop")
    for kid in kids.values():
        (ref,) = kid["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == (
            "PromDemo",
            obj["metadata"]["uid"],
            True,
        ), kid["metadata"]
    created = " ".join(m for t, r, m in events(cp, ns, "shop") if (t, r) == ("Normal", "Created"))
    for kind, name in (("Secret", "shop-reset-token"), ("Deployment", "shop"), ("Service", "shop")):
        assert f"{kind} {name}" in created, created
    before, first_token = uids(kids), token(kids)

    # A spec change: the same objects patched, the pods rolled to it, the token kept.
    patch(cp, "pd/shop", ns, {"spec": {"replicas": 2, "app": {
        "initialInventory": 50, "oversell": False}}})  # fmt: skip
    wait(lambda: observed(cp, ns, "shop"), "the new generation observed", kubelet=kubelet)
    wait(lambda: available(cp, ns, "shop", 2), "shop Available with 2 replicas", kubelet=kubelet)
    kids = children(cp, ns, "shop")
    env = env_of(kids["Deployment"])
    assert (env["PROMDEMO_INITIAL_INVENTORY"], env["PROMDEMO_OVERSELL"]) == ("50", "false"), env

    def rolled() -> bool:
        pods = ready_pods(cp, ns, "shop")
        return len(pods) == 2 and all(
            inventory(f"http://{p['status']['podIP']}:8080") == 50 for p in pods
        )

    wait(rolled, "two pods starting with 50 in stock", kubelet=kubelet)
    assert uids(kids) == before, "children were re-created instead of patched"
    assert token(kids) == first_token, "a spec change rotated the reset token"
    wait(
        lambda: any(r == "Updated" and "Deployment" in m for _, r, m in events(cp, ns, "shop")),
        "an Updated Event naming the Deployment",
        kubelet=kubelet,
    )

    # What the heal loop and other controllers write to the status survives a reconcile.
    foreign = {"type": "Example", "status": "True", "reason": "ByHand", "message": "kept",
               "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    conditions = [*pd(cp, ns, "shop")["status"]["conditions"], foreign]
    cp.kubectl("patch", "pd/shop", "-n", ns, "--subresource=status", "--type", "merge",
               "-p", json.dumps({"status": {"conditions": conditions}}))  # fmt: skip
    patch(cp, "pd/shop", ns, {"spec": {"app": {"initialInventory": 70}}})
    wait(lambda: observed(cp, ns, "shop"), "the next generation observed", kubelet=kubelet)
    assert condition(pd(cp, ns, "shop"), "Example") == foreign, "a foreign condition was dropped"

    # Hand edits of each child are patched back within seconds (the watches, not the
    # 3 h resync), in place: same objects, same token.
    service_ports = kids["Service"]["spec"]["ports"]
    image = kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    patch(cp, "service/shop", ns, {"spec": {"ports": [{"name": "http", "port": 1,
                                                       "targetPort": 1}]}})  # fmt: skip
    patch(cp, "deployment/shop", ns, [{"op": "replace", "value": "example.com/other:1",
          "path": "/spec/template/spec/containers/0/image"}], kind="json")  # fmt: skip
    cp.kubectl("label", "secret", "shop-reset-token", "-n", ns, "app.kubernetes.io/managed-by-")

    def repaired() -> bool:
        now = children(cp, ns, "shop")
        deployment = now["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        return (
            now["Service"]["spec"]["ports"] == service_ports
            and deployment["image"] == image
            and "app.kubernetes.io/managed-by" in now["Secret"]["metadata"]["labels"]
        )

    wait(repaired, "the hand edits patched back", kubelet=kubelet, timeout=30)
    kids = children(cp, ns, "shop")
    assert uids(kids) == before, "a drifted child was re-created"
    assert token(kids) == first_token

    # A deleted child is created again at once (its watch's DELETED event).
    cp.kubectl("delete", "service", "shop", "-n", ns)
    wait(lambda: cp.kubectl("get", "service", "shop", "-n", ns, check=False).returncode == 0,
         "the Service created again", kubelet=kubelet, timeout=30)  # fmt: skip
    assert children(cp, ns, "shop")["Service"]["metadata"]["uid"] != before["Service"]


def test_an_invalid_spec_is_a_condition_and_its_fix_is_reconciled(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = "invalid"
    cp.kubectl("create", "namespace", ns)
    apply_promdemo(cp, ns, "broken", INVALID_SIMULATION)
    apply_promdemo(cp, ns, "fine", {"replicas": 1})
    wait(lambda: observed(cp, ns, "broken"), "broken observed", kubelet=kubelet)
    c = condition(pd(cp, ns, "broken"), "SpecValid")
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec"), c
    assert "dependencyMinSeconds" in c["message"], c
    wait(lambda: ("Warning", "InvalidSpec") in {(t, r) for t, r, _ in events(cp, ns, "broken")},
         "an InvalidSpec Warning Event", kubelet=kubelet)  # fmt: skip
    # The other PromDemo is served meanwhile; the broken one has no child and is not
    # retried hot (its status is not written again while its spec stays as it is).
    wait(lambda: available(cp, ns, "fine", 1), "fine Available", kubelet=kubelet)
    version = pd(cp, ns, "broken")["metadata"]["resourceVersion"]
    assert not get_json(cp, "deployments", "-n", ns, "-l", "app.kubernetes.io/instance=broken")[
        "items"
    ]
    time.sleep(3)
    assert pd(cp, ns, "broken")["metadata"]["resourceVersion"] == version, "retried hot"

    patch(cp, "pd/broken", ns, {"spec": {"app": {"simulation": {"dependencyMinSeconds": 0.5}}}})
    wait(lambda: available(cp, ns, "broken", 1), "broken, fixed, Available", kubelet=kubelet)
    assert condition(pd(cp, ns, "broken"), "SpecValid")["status"] == "True"


def test_at_rest_the_operator_sends_no_request_while_its_heal_loop_runs(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    """Watches, not polls: a converged PromDemo whose pod is checked every second costs
    no API request (the audit log), yet the heal loop is alive (a negative pod is reset)."""
    cp = operator
    ns = "at-rest"
    cp.kubectl("create", "namespace", ns)
    apply_promdemo(cp, ns, "shop", {
        "replicas": 1, "autoHeal": {"interval": "1s", "for": "0s", "cooldown": "0s"},
        "app": {"initialInventory": 5, "simulation": {  # no failures: oversell sees 200/409
            "dependencyFailureRate": 0, "dependencyMinSeconds": 0.5, "dependencyMaxSeconds": 0.8}},
    })  # fmt: skip
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    (pod,) = ready_pods(cp, ns, "shop")
    wait(lambda: pod["metadata"]["name"] in (pd(cp, ns, "shop").get("status") or {}).get(
        "inventory", {}), "the pod's inventory in the status", kubelet=kubelet)  # fmt: skip
    time.sleep(11)  # the heal loop's status writes are coalesced: one per 10 s at most
    mark = len(operator_requests(cp, ns))
    time.sleep(8)  # eight heal checks
    sent = operator_requests(cp, ns)[mark:]
    assert sent == [], [(e["verb"], e["requestURI"]) for e in sent]

    url = f"http://{pod['status']['podIP']}:8080"
    oversell(url, token=token(children(cp, ns, "shop")))
    wait(lambda: inventory(url) >= 0, "the oversold pod reset", kubelet=kubelet, timeout=30)


def test_doctor_reads_the_cluster_and_says_what_is_missing_first(
    operator: ControlPlane, kubelet: Kubelet, tmp_path: Path
) -> None:
    """`promdemo doctor` as a user runs it (a kubeconfig): no prometheus-operator CRDs in
    this cluster, so it stops at them and says how to fix it; the children are fine."""
    cp = operator
    ns = "doctor"
    cp.kubectl("create", "namespace", ns)
    apply_promdemo(cp, ns, "shop", {"replicas": 1})
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    if cp.kubectl("get", "crd", "servicemonitors.monitoring.coreos.com", check=False).returncode \
            == 0:  # fmt: skip
        pytest.fail("the monitoring CRDs are installed: run this before test_rbac_coverage.py")

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        promdemo = str(Path(sys.executable).parent / "promdemo")
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        return subprocess.run([promdemo, "doctor", *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)  # fmt: skip

    result = doctor("-n", ns, "shop")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"PromDemo {ns}/shop: broken at crds", result.stdout
    assert lines[1] == (
        "  crds      BROKEN   monitoring.coreos.com/v1 does not serve ServiceMonitor,"
        " PrometheusRule and Prometheus: prometheus-operator's CRDs are not installed"
    ), result.stdout
    assert "children  ok       Deployment, Service, Secret shop-reset-token" in result.stdout
    assert any(line.startswith("  fix: install prometheus-operator with its CRDs")
               for line in lines), lines  # fmt: skip
    # The Lease of the operator's Deployment (two replicas): who leads.
    assert lines[-1].startswith("operator leader: promdemo-operator-"), lines
    missing = doctor("-n", ns, "nothing")
    assert missing.returncode == 1
    assert missing.stdout.startswith(f"PromDemo nothing not found in namespace {ns}\n")


def test_replicas_are_the_promdemos_and_what_other_writers_add_is_kept(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    """`kubectl scale deploy` (or an HPA) is set back to spec.replicas with a Warning that
    says how to scale instead; `kubectl scale pd` is followed. A sidecar, an env var
    injected into the app's container and a label, as admission webhooks and other
    controllers add them, survive a spec change and a drift repair (replicas 0: no pod
    needs the sidecar's image)."""
    cp = operator
    ns = "writers"
    cp.kubectl("create", "namespace", ns)
    apply_promdemo(cp, ns, "shop", {"replicas": 0})
    wait(lambda: observed(cp, ns, "shop"), "shop observed", kubelet=kubelet)

    def replicas() -> int:
        return int(get_json(cp, "deployment", "shop", "-n", ns)["spec"]["replicas"])

    def told() -> list[str]:
        return [m for t, r, m in events(cp, ns, "shop") if (t, r) == ("Warning", "ReplicasSetBack")]

    cp.kubectl("scale", "deployment/shop", "-n", ns, "--replicas=3")
    wait(lambda: replicas() == 0 and bool(told()), "the Deployment set back, with a Warning",
         kubelet=kubelet, timeout=30)  # fmt: skip
    assert "kubectl scale promdemo/shop" in told()[0], told()
    assert "scaled to 3" in told()[0], told()
    cp.kubectl("scale", "pd/shop", "-n", ns, "--replicas=1")
    wait(lambda: replicas() == 1, "the Deployment follows kubectl scale pd", kubelet=kubelet)
    cp.kubectl("scale", "pd/shop", "-n", ns, "--replicas=0")
    wait(lambda: replicas() == 0 and observed(cp, ns, "shop"), "scaled back to 0",
         kubelet=kubelet)  # fmt: skip
    assert len(told()) == 1, "scaling the PromDemo was reported as an override"

    patch(cp, "deployment/shop", ns, [
        {"op": "add", "path": "/spec/template/spec/containers/-",
         "value": {"name": "sidecar", "image": "example.com/mesh-proxy:1"}},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
         "value": {"name": "INJECTED_BY_WEBHOOK", "value": "1"}},
        {"op": "add", "path": "/metadata/labels/team", "value": "shop"},
    ], kind="json")  # fmt: skip
    image = get_json(cp, "deployment", "shop", "-n", ns)["spec"]["template"]["spec"][
        "containers"][0]["image"]  # fmt: skip
    patch(cp, "pd/shop", ns, {"spec": {"app": {"initialInventory": 42}}})
    patch(cp, "deployment/shop", ns, [{"op": "replace", "value": "example.com/other:1",
          "path": "/spec/template/spec/containers/0/image"}], kind="json")  # fmt: skip

    def converged() -> bool:
        deployment = get_json(cp, "deployment", "shop", "-n", ns)
        app = deployment["spec"]["template"]["spec"]["containers"][0]
        return env_of(deployment).get("PROMDEMO_INITIAL_INVENTORY") == "42" and (
            app["image"] == image
        )

    wait(converged, "the new spec applied and the image set back", kubelet=kubelet, timeout=30)
    deployment = get_json(cp, "deployment", "shop", "-n", ns)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"], containers
    assert containers[1]["image"] == "example.com/mesh-proxy:1"
    assert env_of(deployment)["INJECTED_BY_WEBHOOK"] == "1"
    assert deployment["metadata"]["labels"]["team"] == "shop"
