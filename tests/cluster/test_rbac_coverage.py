"""RBAC coverage from the API server's audit log: manifests/base/rbac.yaml grants what
the operator uses, and no more.

The operator runs as its Deployment's pod with its ServiceAccount's token, so the
audit log names it (`system:serviceaccount:promdemo-system:promdemo-operator`) in
every request it sent during the session, with the answer the real RBAC authorizer
gave. This test runs last in the tier (tests/cluster/conftest.py orders it) and
first drives what the other tests may not have: the monitoring CRDs installed
(prometheus-operator's, from its upstream build), a PromDemo with ServiceMonitor
and PrometheusRule selected by a Prometheus object, drift repaired (a scaled
Deployment, a label removed from each other child), monitoring
switched off (deleted), a heal through the API server's pod proxy (podAccess
apiProxy), a watch gap (every child read from the API), the PromDemo deleted
(kopf's finalizer). Then, from the log:

- every (group, resource[/subresource], verb) the operator used is granted by the
  ClusterRole, and the authorizer refused no request of the operator (audit
  annotation `authorization.k8s.io/decision: forbid`; a 403 from admission, such as
  a create in a terminating namespace, is not RBAC's) but those the missing-verb
  test provoked on purpose (namespace `rbac`) and those a restarting API server
  answered before it was ready (its authorizer's caches still empty);
- every grant was used, or is one of the documented needs below.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import get_json, lease_outlasting_restarts, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.oversold_app import oversell
from tests.support.promdemos import HEAL_SPEC, app_pods, available, new_namespace, promdemo
from tests.support.rbac import granted, leader_election_role, load_rbac
from tests.support.upstream import require_upstream

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

OPERATOR_USER = "system:serviceaccount:promdemo-system:promdemo-operator"
MONITORING_CRDS = ("servicemonitors", "prometheusrules", "prometheuses")

#: Granted although nothing in the test cluster can exercise them, each with the reason.
DOCUMENTED_NEEDS: dict[tuple[str, str, str], str] = {
    ("promdemo.dev", "promdemos/finalizers", "update"): (
        "OwnerReferencesPermissionEnforcement checks it for blockOwnerDeletion; no request"
    ),
}


@pytest.fixture(scope="module", autouse=True)
def lease_outlasting_a_restart(operator: ControlPlane, kubelet: Kubelet) -> Iterator[None]:
    """The watch gap below restarts the API server: the leader must live through it to
    read its children again (a restarted process would list them instead)."""
    with lease_outlasting_restarts(operator, kubelet):
        yield


def operator_requests(cp: ControlPlane) -> list[dict[str, Any]]:
    return [
        e for e in cp.audit_events()
        if (e.get("user") or {}).get("username") == OPERATOR_USER and e.get("objectRef")
    ]  # fmt: skip


def rbac_key(event: dict[str, Any]) -> tuple[str, str, str]:
    ref = event["objectRef"]
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return (ref.get("apiGroup", ""), resource, event["verb"])


def install_monitoring_crds(cp: ControlPlane) -> None:
    binary = require_upstream("prometheus-operator", "prometheus-operator")
    crds = Path(binary).parent.parent / "crds"
    for plural in MONITORING_CRDS:
        cp.kubectl(
            "apply", "--server-side", "-f", str(crds / f"monitoring.coreos.com_{plural}.yaml")
        )
    for plural in MONITORING_CRDS:
        cp.kubectl("wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com")


def exists(cp: ControlPlane, *args: str) -> bool:
    done = cp.kubectl("get", *args, "-o", "name", "--ignore-not-found", check=False)
    return bool(done.stdout.strip())


def drive_every_grant(cp: ControlPlane, kubelet: Kubelet) -> None:
    install_monitoring_crds(cp)
    ns = new_namespace(cp, "coverage")
    prometheus = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": "k8s", "namespace": ns},
        "spec": {"serviceMonitorSelector": {}, "ruleSelector": {}},
    }  # fmt: skip
    cp.kubectl("apply", "-f", "-", input=json.dumps(prometheus))
    cp.kubectl("apply", "-f", "-", input=promdemo("cover", ns))
    wait(lambda: available(cp, ns, "cover", 1), "cover Available", kubelet=kubelet)
    for kind in ("servicemonitor", "prometheusrule"):
        wait(lambda kind=kind: exists(cp, kind, "cover", "-n", ns), f"{kind} cover",
             kubelet=kubelet)  # fmt: skip
    # Selected by the Prometheus: the operator asks it through the service proxy (no
    # Prometheus runs here: the proxy answers 503, the request was authorized all the same).
    wait(
        lambda: any(rbac_key(e) == ("", "services/proxy", "get") for e in operator_requests(cp)),
        "a request through the service proxy to prometheus-operated",
        kubelet=kubelet,
    )
    # Drift: someone scales the Deployment; the operator patches it back.
    cp.kubectl("scale", "deployment/cover", "-n", ns, "--replicas=2")
    wait(
        lambda: get_json(cp, "deployment", "cover", "-n", ns)["spec"]["replicas"] == 1,
        "the Deployment set back to 1 replica",
        kubelet=kubelet,
    )
    # A label of each child removed by hand: the operator puts it back.
    children = ("secret/cover-reset-token", "service/cover", "servicemonitor/cover",
                "prometheusrule/cover")  # fmt: skip
    for child in children:
        cp.kubectl("label", child, "-n", ns, "app.kubernetes.io/managed-by-")
    for child in children:
        wait(
            lambda child=child: (
                "app.kubernetes.io/managed-by"
                in get_json(cp, child, "-n", ns)["metadata"].get("labels", {})
            ),
            f"the label of {child} put back",
            kubelet=kubelet,
        )
    # Monitoring switched off: the operator deletes what it created.
    off = {"spec": {"monitoring": {"serviceMonitor": False, "prometheusRule": False}}}
    cp.kubectl("patch", "pd/cover", "-n", ns, "--type=merge", "-p", json.dumps(off))
    for kind in ("servicemonitor", "prometheusrule"):
        wait(lambda kind=kind: not exists(cp, kind, "cover", "-n", ns), f"{kind} deleted",
             kubelet=kubelet)  # fmt: skip
    # A heal through the API server's pod proxy (podAccess apiProxy).
    spec = {**HEAL_SPEC, "autoHeal": {**HEAL_SPEC["autoHeal"], "podAccess": "apiProxy"}}
    cp.kubectl("apply", "-f", "-", input=promdemo("proxied", ns, spec))
    wait(lambda: available(cp, ns, "proxied", 1), "proxied Available", kubelet=kubelet)
    secret = get_json(cp, "secret", "proxied-reset-token", "-n", ns)
    token = base64.b64decode(secret["data"]["token"]).decode()
    (pod,) = app_pods(cp, ns, "proxied")
    oversell(f"http://{pod['status']['podIP']}:8080", token=token)
    wait(
        lambda: (
            (get_json(cp, "pd", "proxied", "-n", ns).get("status") or {}).get("healCount", 0) >= 1
        ),
        "a heal through the pod proxy",
        kubelet=kubelet,
    )
    # A watch gap: every child is read from the API once.
    cp.restart_apiserver(before_start=cp.etcd_compact)
    reads = {("", "secrets", "get"), ("apps", "deployments", "get"), ("", "services", "get"),
             ("monitoring.coreos.com", "servicemonitors", "get"),
             ("monitoring.coreos.com", "prometheusrules", "get")}  # fmt: skip
    wait(
        lambda: reads <= {rbac_key(e) for e in operator_requests(cp)},
        "every child read from the API after the watch gap",
        kubelet=kubelet,
    )
    # Deleted: kopf removes its finalizer, the garbage collector the children.
    cp.kubectl("delete", "pd/cover", "pd/proxied", "-n", ns, "--wait=true", timeout=120)


def test_rbac_grants_exactly_what_the_operator_uses(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    drive_every_grant(cp, kubelet)
    requests = operator_requests(cp)
    assert requests, "no request of the operator in the audit log"

    refused = [
        (rbac_key(e), e["objectRef"].get("namespace"))
        for e in requests
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
        and e["objectRef"].get("namespace") != "rbac"
        and not cp.starting(e["requestReceivedTimestamp"])
    ]
    assert not refused, f"the real authorizer refused the operator: {refused}"

    used = {rbac_key(e) for e in requests}
    role, _ = load_rbac()
    lease_role = leader_election_role()
    # The Lease verbs come from a Role: granted in its namespace only.
    lease_grants = granted(lease_role)
    elsewhere = [
        (rbac_key(e), e["objectRef"].get("namespace"))
        for e in requests
        if rbac_key(e) in lease_grants
        and e["objectRef"].get("namespace") != lease_role["metadata"]["namespace"]
    ]
    assert not elsewhere, f"Lease requests outside the Role's namespace: {elsewhere}"
    grants = granted(role) | lease_grants
    missing = sorted(used - grants)
    assert not missing, f"the operator sent requests its RBAC does not grant: {missing}"
    unused = sorted(grants - used - set(DOCUMENTED_NEEDS))
    assert not unused, f"RBAC grants what the operator never used: {unused}"
