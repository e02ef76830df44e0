"""The operator's leadership on the cluster tier: who holds the Lease, the leader's process
(run by the kubelet stand-in), and the heal checks an operator pod has run. Shared by
tests/cluster/test_faults.py and bench/bench_failover.py."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from typing import Any

from tests.support.cluster import OPERATOR_NAMESPACE
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet

LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/promdemo-operator"


def holder(cp: ControlPlane) -> str | None:
    """The pod holding the operator's Lease (None: nobody)."""
    lease = cp.get(LEASE)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def operator_process(kubelet: Kubelet, pod: str) -> subprocess.Popen[bytes]:
    """The running operator process of pod `pod` (the kubelet stand-in's container)."""
    for p in list(kubelet.pods.values()):
        if (p.namespace, p.name) == (OPERATOR_NAMESPACE, pod) and p.containers:
            popen = p.containers[0].popen
            if popen is not None and popen.poll() is None:
                return popen
    raise AssertionError(f"no running operator process in pod {pod}")


def metrics_text(ip: str, port: int = 8080) -> str | None:
    """A pod's /metrics page, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=2) as r:
            return r.read().decode()
    except (OSError, urllib.error.URLError):
        return None


def sample(text: str | None, name: str, labels: str = "") -> float | None:
    """The value of the series `name{labels}` on a metrics page (None: absent)."""
    if text is None:
        return None
    head = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(head):
            return float(line.rsplit(" ", 1)[1])
    return None


def heal_checks(ip: str, namespace: str, promdemo: str) -> float | None:
    """promdemo_heal_checks_total of one PromDemo on the operator pod at `ip`."""
    labels = f'namespace="{namespace}",promdemo="{promdemo}"'
    return sample(metrics_text(ip), "promdemo_heal_checks_total", labels)


def pod_ips(pods: list[dict[str, Any]]) -> dict[str, str]:
    """name -> podIP of the pods that have one."""
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods
            if (p.get("status") or {}).get("podIP")}  # fmt: skip
