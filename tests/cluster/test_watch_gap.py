"""A watch gap: the API server restarts over a compacted etcd, so every watch that
resumes gets 410 Gone and lists again. A child deleted during the gap never
reaches the operator as a DELETED event, and kopf's index still holds it; the
operator must notice anyway (the PromDemo listed again → its next reconcile reads
every child from the API) and create it again within seconds, not at the next
resync (3 h by default).

install.yaml runs two replicas behind a Lease with client-go's 15 s lease and 10 s
renew deadline: an API server down for longer than that (a restart here takes
10-17 s) makes the leader stop and restart, and a fresh process lists everything
anyway, so the gap would go untested. This module runs the operator with a lease
that outlasts the restart, so the same process lives through the gap."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cluster import (
    get_json,
    lease_outlasting_restarts,
    operator_pods,
    operator_processes,
    ready,
    wait,
)
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.promdemos import HEAL_SPEC, app_pods, available, new_namespace, promdemo

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def lease_outlasting_a_restart(operator: ControlPlane, kubelet: Kubelet) -> Iterator[None]:
    with lease_outlasting_restarts(operator, kubelet):
        yield


def test_a_child_deleted_during_a_watch_gap_is_back_within_seconds(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    cp = operator
    ns = new_namespace(cp, "gap")
    cp.kubectl("apply", "-f", "-", input=promdemo("shop", ns))
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    before = get_json(cp, "service", "shop", "-n", ns)["metadata"]["uid"]
    processes = operator_processes(cp)

    def behind_the_api_servers_back() -> None:
        # The Service goes while no watch can see it, and etcd forgets the history the
        # watches would resume from: they get 410 Gone and list again.
        assert cp.etcd_delete(f"/registry/services/specs/{ns}/shop") == 1
        cp.etcd_compact()

    cp.restart_apiserver(before_start=behind_the_api_servers_back)

    def service_uid() -> str | None:
        found = cp.kubectl("get", "service", "shop", "-n", ns, "-o", "jsonpath={.metadata.uid}",
                           check=False)  # fmt: skip
        return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None

    # Within seconds of the API server being back (kopf's watches reconnect at once).
    wait(lambda: service_uid() not in (None, before), "the Service created again",
         kubelet=kubelet, timeout=60)  # fmt: skip
    wait(lambda: available(cp, ns, "shop", 1), "shop Available again", kubelet=kubelet)
    assert operator_processes(cp) == processes, "an operator restarted: the gap went untested"


def scrape_failures(cp: ControlPlane, namespace: str) -> float:
    """The operator's promdemo_heal_scrape_failures_total for `namespace`, from its pod."""
    total = 0.0
    for pod in operator_pods(cp):  # the standby checks nothing: its counter stays at 0
        text = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics", timeout=5).text
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("promdemo_heal_scrape_failures_total{")
            and f'namespace="{namespace}"' in line
        )
    return total


def test_a_pod_deleted_during_a_watch_gap_is_no_longer_checked(
    operator: ControlPlane, kubelet: Kubelet
) -> None:
    """kopf's pod index keeps a pod deleted during the gap; the heal loop lists the pods
    once after the re-list and stops probing the dead one (it would fail every check)."""
    cp = operator
    ns = new_namespace(cp, "gap-pods")
    cp.kubectl("apply", "-f", "-", input=promdemo("shop", ns, HEAL_SPEC))  # checks every 1 s
    wait(lambda: available(cp, ns, "shop", 1), "shop Available", kubelet=kubelet)
    (old,) = app_pods(cp, ns, "shop")
    processes = operator_processes(cp)

    def behind_the_api_servers_back() -> None:
        assert cp.etcd_delete(f"/registry/pods/{ns}/{old['metadata']['name']}") == 1
        cp.etcd_compact()

    cp.restart_apiserver(before_start=behind_the_api_servers_back)

    def replacement() -> list[dict]:
        return [p for p in app_pods(cp, ns, "shop")
                if p["metadata"]["name"] != old["metadata"]["name"] and ready(p)]  # fmt: skip

    wait(lambda: len(replacement()) == 1, "the ReplicaSet's new pod ready", kubelet=kubelet)
    time.sleep(3)  # a few checks after the re-list
    before = scrape_failures(cp, ns)
    time.sleep(4)  # four more checks (interval 1 s)
    assert scrape_failures(cp, ns) == before, "the heal loop still probes the deleted pod"
    assert operator_processes(cp) == processes, "an operator restarted: the gap went untested"
