"""A watch gap that only the children's watches have: the Service watch gets 410 Gone
and lists again while the PromDemo watch resumes where it was. A Service deleted
during that gap never comes as a DELETED event and stays in kopf's index; before,
only a re-list of the PromDemo watch made the operator read the children from the
API, so this Service stayed missing until the resync (3 h). Now a child listed
again that the watches had seen before does it (`child_watch_relisted`).

How the gap is made one-sided: this module's API server runs without its watch
cache (`--watch-cache=false`), so a resuming watch is answered by etcd, which
answers 410 Gone exactly when the resourceVersion was compacted away. The PromDemo
is touched last (its watch holds the newest resourceVersion of the children's
and its own), then, with the API server stopped, the Service is deleted in etcd
and etcd compacted at the PromDemo's resourceVersion: every child watch resumes
from an older one (410, a re-list), the PromDemo watch from that one (no gap).
The audit log shows which watches listed again. Its own control plane: the
session's keeps its watch cache, as every cluster has it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.cluster import (
    INSTALL_YAML,
    condition,
    get_json,
    lease_outlasting_restarts,
    operator_pods,
    operator_processes,
    wait,
)
from tests.support.controlplane import ControlPlane, require_controlplane
from tests.support.kubelet import Kubelet

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

OPERATOR_USER = "system:serviceaccount:promdemo-system:promdemo-operator"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Kubelet]]:
    """A control plane without watch cache, install.yaml's operator living through restarts."""
    require_controlplane()
    with ControlPlane(apiserver_args=["--watch-cache=false"]) as cp, Kubelet(cp) as kubelet:
        cp.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
        wait(lambda: len(operator_pods(cp)) == 2, "two ready operator pods", kubelet=kubelet,
             timeout=180)  # fmt: skip
        with lease_outlasting_restarts(cp, kubelet):
            yield cp, kubelet


def resource_version(cp: ControlPlane, *args: str) -> int:
    return int(get_json(cp, *args)["metadata"]["resourceVersion"])


def lists_since(cp: ControlPlane, began: float) -> set[str]:
    """The resources the operator listed (not watched) since `began` (epoch seconds)."""
    found = set()
    for e in cp.audit_events():
        when = datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00"))
        user = (e.get("user") or {}).get("username")
        if user == OPERATOR_USER and e.get("verb") == "list" and when.timestamp() >= began:
            found.add((e.get("objectRef") or {}).get("resource", ""))
    return found


def test_a_child_deleted_in_a_gap_of_its_own_watch_is_back_within_seconds(
    cluster: tuple[ControlPlane, Kubelet],
) -> None:
    cp, kubelet = cluster
    ns = "gap"
    cp.kubectl("create", "namespace", ns)
    cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": "shop", "namespace": ns}, "spec": {"replicas": 1},
    }))  # fmt: skip

    def available() -> bool:
        obj: dict[str, Any] = get_json(cp, "promdemo", "shop", "-n", ns)
        return condition(obj, "Available").get("status") == "True"

    wait(available, "shop Available", kubelet=kubelet)
    before = get_json(cp, "service", "shop", "-n", ns)["metadata"]["uid"]
    processes = operator_processes(cp)
    # The PromDemo is touched last: its watch holds the newest resourceVersion.
    time.sleep(2)
    cp.kubectl("annotate", "promdemo", "shop", "-n", ns, "example.com/touched=1")
    time.sleep(2)  # the operator's watch has it
    promdemo_version = resource_version(cp, "promdemo", "shop", "-n", ns)
    service_version = resource_version(cp, "service", "shop", "-n", ns)
    assert service_version + 1 < promdemo_version

    def behind_the_api_servers_back() -> None:
        assert cp.etcd_delete(f"/registry/services/specs/{ns}/shop") == 1
        cp.etcd_compact(promdemo_version)

    began = time.time()
    cp.restart_apiserver(before_start=behind_the_api_servers_back)

    def service_uid() -> str | None:
        found = cp.kubectl("get", "service", "shop", "-n", ns, "-o", "jsonpath={.metadata.uid}",
                           check=False)  # fmt: skip
        return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None

    wait(lambda: service_uid() not in (None, before), "the Service created again",
         kubelet=kubelet, timeout=60)  # fmt: skip
    # The gap was the children's alone: their watches listed again, the PromDemos' not.
    listed = lists_since(cp, began)
    assert "services" in listed, listed
    assert "promdemos" not in listed, listed
    assert operator_processes(cp) == processes, "an operator restarted: the gap went untested"
