"""The test cluster itself: what the other cluster tests rely on, shown once."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.support.cluster import apply_children_of, wait
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet

pytestmark = pytest.mark.cluster


def test_server_version_and_rbac_are_real(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == control_plane.kubernetes_version
    # A ServiceAccount token is checked by the RBAC authorizer: a fresh account may do nothing.
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", "default")
    token = control_plane.token("default", "nobody")
    config = control_plane.token_kubeconfig(token, control_plane.workdir / "nobody.kubeconfig")
    denied = control_plane.kubectl("get", "secrets", "-n", "default", kubeconfig=config,
                                   check=False)  # fmt: skip
    assert denied.returncode != 0
    assert (
        'User "system:serviceaccount:default:nobody" cannot list resource "secrets"'
        in denied.stderr
    )


def test_a_deployment_becomes_ready_pods_on_their_own_ips(
    control_plane: ControlPlane, kubelet: Kubelet
) -> None:
    ns = "cp-smoke"
    control_plane.kubectl("create", "namespace", ns)
    apply_children_of(control_plane, "shop", ns)
    control_plane.kubectl("scale", "deployment/shop", "-n", ns, "--replicas=2")

    def ready_pods() -> list[dict]:
        pods = json.loads(control_plane.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)
        return [
            p for p in pods["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p["status"].get("conditions", []))
        ]  # fmt: skip

    wait(lambda: len(ready_pods()) == 2, "2 ready pods", kubelet=kubelet)
    ips = {p["status"]["podIP"] for p in ready_pods()}
    assert len(ips) == 2
    assert not any(ip.startswith("127.") for ip in ips)
    for ip in ips:  # each pod's own process answers on its own address
        with urllib.request.urlopen(f"http://{ip}:8080/inventory", timeout=5) as r:
            assert json.loads(r.read())["inventory"] == 100

    def endpoints() -> set[str]:
        slices = control_plane.request(
            "GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        )
        return {a for s in slices["items"] for e in s.get("endpoints") or []
                for a in e["addresses"] if (e.get("conditions") or {}).get("ready")}  # fmt: skip

    wait(lambda: endpoints() == ips, "the EndpointSlice lists both pods", kubelet=kubelet)
    # The API server's service proxy reaches a pod (it refuses loopback endpoints).
    answer = control_plane.request(
        "GET", f"/api/v1/namespaces/{ns}/services/shop:http/proxy/inventory"
    )
    assert answer["inventory"] == 100
    # Every neighbour (ARP) entry on those ways is static: the kernel's neighbour table,
    # shared by every namespace of the host, may be full of other programs' entries
    # ("neighbor table overflow!"), and a resolution would then fail: pods unreachable.
    pods = [p.netns for p in kubelet.pods.values() if p.namespace == ns]
    assert len(pods) == 2
    for netns in (control_plane.netns, *pods):
        entries = subprocess.run(["ip", "-n", netns, "neigh", "show"], capture_output=True,
                                 text=True, check=True).stdout.splitlines()  # fmt: skip
        assert entries, netns
        assert all("PERMANENT" in e.split() for e in entries), (netns, entries)
    control_plane.kubectl("delete", "namespace", ns, "--wait=true", timeout=120)
