"""Two real operator processes with --leader-elect against kmock: one heals, the other waits.

The test plays the kubelet as test_heal_operator.py does (app processes on
127.0.0.x stand in for the pods). Short lease settings (3 s / 2 s / 0.5 s) keep it
quick; the defaults (15 s / 10 s / 2 s) are the unit tests' and the manifests'.

- only the Lease holder reconciles and heals; the standby's counters stay at 0;
- SIGKILL the leader: the standby takes the Lease, starts its handlers and heals,
  and never resets a pod the old leader reset within the cooldown (the cooldown
  lives in the PromDemo's status, `lastHeal.recentResets`, which the new leader's
  heal loop restores at its start);
- SIGKILL the leader in the middle of a reset (the pod has the POST, the leader has
  not written its status yet): the new leader still does not reset that pod again
  (the leader wrote the pod's cooldown to the status BEFORE sending the reset);
- SIGSTOP the leader past the lease: the standby takes over; the woken leader
  sends no reset (its pod client is fenced) and exits with status 1;
- the operators' Lease requests are exactly what the namespaced Role grants, and
  `promdemo doctor` names the holder, before and after a clean stop hands it over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.operator.test_heal_operator import NAME, NS, heal_checks, promdemo, reset_token, status
from tests.support.console import promdemo_exe
from tests.support.fake_pods import fake_pods
from tests.support.kmock_cluster import KmockCluster, OperatorProcess, operator_log_tail
from tests.support.oversold_app import APP_ENV, inventory, oversell, resets_counted
from tests.support.processes import wait_until

pytestmark = [pytest.mark.operator, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
LEASES = "coordination.k8s.io/v1/leases"
LEASE_NS = "promdemo-system"
LEASE = "promdemo-operator"
FAST = ("--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
        "--leader-elect-retry-period", "500ms")  # fmt: skip


@pytest.fixture
def cluster(kmock_cluster_factory: Callable[..., KmockCluster]) -> KmockCluster:
    return kmock_cluster_factory(namespaces=("demo", LEASE_NS))


def start(cluster: KmockCluster, identity: str) -> OperatorProcess:
    return cluster.start_operator(
        "--leader-elect", "--leader-elect-namespace", LEASE_NS,
        "--leader-elect-identity", identity, *FAST,
        log_name=f"{identity}.log",
    )  # fmt: skip


def doctor(cluster: KmockCluster) -> str:
    """`promdemo doctor -n demo` as a user runs it; its output."""
    env = {**os.environ, **cluster.operator_env()}
    result = subprocess.run(
        [promdemo_exe(), "doctor", "-n", NS], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert not result.stderr, result.stderr
    return result.stdout


def holder(cluster: KmockCluster) -> str | None:
    lease = cluster.get(LEASES, LEASE_NS, LEASE)
    return ((lease or {}).get("spec") or {}).get("holderIdentity")


def leading(op: OperatorProcess) -> float:
    return op.metric_value("promdemo_operator_leader")


def wait_for(
    cluster: KmockCluster, predicate: Callable[[], bool], what: str, *ops: OperatorProcess
) -> None:
    try:
        wait_until(predicate, timeout=60, interval=0.1, what=what)
    except TimeoutError as e:
        logs = "\n".join(f"--- {op.process.log_path.name}\n{operator_log_tail(op)}" for op in ops)
        raise AssertionError(f"{e}\nstatus: {status(cluster)}\n{logs}") from e


def two_operators_and_two_pods(
    cluster: KmockCluster, start_app: Callable[..., Any]
) -> tuple[OperatorProcess, OperatorProcess, str, str, str]:
    first = start(cluster, "op-1")
    wait_for(cluster, lambda: holder(cluster) == "op-1", "op-1 to take the Lease", first)
    second = start(cluster, "op-2")
    cluster.create(
        promdemo({"interval": "1s", "for": "0s", "cooldown": "10m", "podAccess": "podIP"})
    )
    token = reset_token(cluster)  # written by the leader's reconcile
    env = {**APP_ENV, "PROMDEMO_RESET_TOKEN": token}
    _, url_a = start_app(env=env, host="127.0.0.2")
    _, url_b = start_app(env=env, host="127.0.0.3")
    cluster.store_pod(NS, NAME, "shop-a", url_a)
    cluster.store_pod(NS, NAME, "shop-b", url_b)
    wait_for(
        cluster,
        lambda: set(status(cluster).get("inventory") or {}) == {"shop-a", "shop-b"},
        "the leader's heal loop to see both pods",
        first,
    )
    return first, second, url_a, url_b, token


def test_only_the_leader_heals_and_the_standby_takes_over_without_a_double_reset(
    cluster: KmockCluster, start_app: Callable[..., Any]
) -> None:
    first, second, url_a, url_b, token = two_operators_and_two_pods(cluster, start_app)
    assert leading(first) == 1
    assert leading(second) == 0

    # The leader resets A; the standby ran no reconcile and no heal check.
    oversell(url_a, token=token)
    wait_for(cluster, lambda: status(cluster).get("healCount") == 1, "the leader's reset", first)
    assert status(cluster)["lastHeal"]["pod"] == "shop-a"
    assert resets_counted(url_a) == 1
    assert heal_checks(first) > 0
    assert heal_checks(second) == 0
    assert sum(second.metric_value("promdemo_reconciles_total", {"result": r})
               for r in ("success", "invalid_spec", "error")) == 0  # fmt: skip

    # A is negative again, within its cooldown; the leader dies without a word.
    oversell(url_a, token=token)
    first.process.signal(signal.SIGKILL)
    wait_for(cluster, lambda: holder(cluster) == "op-2", "op-2 to take the Lease", second)
    wait_for(cluster, lambda: heal_checks(second) > 0, "op-2's first heal check", second)
    assert leading(second) == 1
    lease = cluster.get(LEASES, LEASE_NS, LEASE)
    assert lease["spec"]["leaseTransitions"] == 1

    # The new leader heals (B) but leaves A alone: reset by op-1 less than 10m ago.
    oversell(url_b, token=token)
    wait_for(cluster, lambda: status(cluster).get("healCount") == 2, "op-2's reset of B", second)
    assert status(cluster)["lastHeal"]["pod"] == "shop-b"
    wait_until(lambda: heal_checks(second) >= 5, timeout=30, what="more checks by op-2")
    assert inventory(url_a) < 0, "the new leader reset A within the old leader's cooldown"
    assert resets_counted(url_a) == 1
    assert resets_counted(url_b) == 1


def test_a_leader_stopped_past_its_lease_does_not_act_when_it_wakes(
    cluster: KmockCluster, start_app: Callable[..., Any]
) -> None:
    first, second, url_a, _, token = two_operators_and_two_pods(cluster, start_app)
    first.process.signal(signal.SIGSTOP)
    try:
        wait_for(cluster, lambda: holder(cluster) == "op-2", "op-2 to take the Lease", second)
        # op-2 heals A once; then A goes negative again, inside op-2's cooldown.
        oversell(url_a, token=token)
        wait_for(
            cluster, lambda: status(cluster).get("healCount") == 1, "op-2's reset of A", second
        )
        assert status(cluster)["lastHeal"]["pod"] == "shop-a"
        oversell(url_a, token=token)
        wait_until(lambda: heal_checks(second) >= 3, timeout=30, what="op-2 checking on")
    finally:
        first.process.signal(signal.SIGCONT)
    # op-1 wakes with A negative, never reset by op-1 itself, and its check long due.
    code = first.process.wait(timeout=20)
    assert code == 1, operator_log_tail(first)
    assert "leader election lost" in first.process.log()
    time.sleep(1)
    assert inventory(url_a) < 0, "a reset reached A after op-2 had reset it within cooldown"
    assert resets_counted(url_a) == 1, operator_log_tail(first)
    assert leading(second) == 1


def test_the_lease_requests_are_exactly_what_the_role_grants(
    cluster: KmockCluster, start_app: Callable[..., Any]
) -> None:
    first = start(cluster, "op-1")
    wait_for(cluster, lambda: holder(cluster) == "op-1", "op-1 to take the Lease", first)
    second = start(cluster, "op-2")
    assert leading(first) == 1
    assert leading(second) == 0
    time.sleep(1.5)  # renewals and standby tries
    shown = doctor(cluster)
    assert shown.splitlines()[-1].startswith("operator leader: op-1 (renewed "), shown
    assert cluster.stop_operator(first) == 0  # a clean stop releases the Lease
    wait_for(cluster, lambda: holder(cluster) == "op-2", "op-2 to take the released Lease", second)
    shown = doctor(cluster)
    assert "operator leader: op-2 (renewed " in shown
    assert "1 change of leader" in shown
    used = {
        (c.verb, c.namespace)
        for c in cluster.api_calls()
        if c.client == "operator" and c.group == "coordination.k8s.io"
    }
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text()))
    roles = [d for d in docs if d and d["kind"] == "Role"]
    assert len(roles) == 1
    grants = {
        verb
        for rule in roles[0]["rules"]
        if rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
        for verb in rule["verbs"]
    }
    assert {verb for verb, _ in used} == grants
    assert {ns for _, ns in used} == {LEASE_NS}
    assert roles[0]["metadata"]["namespace"] == LEASE_NS


def test_a_leader_killed_in_the_middle_of_a_reset_leaves_the_pod_in_cooldown(
    cluster: KmockCluster, tmp_path: Path
) -> None:
    # A pod that answers a reset after 3 s and stays negative (tests/support/fake_pods.py):
    # the kill lands after the POST reached the pod and before the answer came back.
    with fake_pods(tmp_path, pods=["shop-a=ok:late"], value=-5) as (_, urls):
        first = start(cluster, "op-1")
        wait_for(cluster, lambda: holder(cluster) == "op-1", "op-1 to take the Lease", first)
        second = start(cluster, "op-2")
        cluster.create(
            promdemo({"interval": "1s", "for": "0s", "cooldown": "10m", "podAccess": "podIP"})
        )
        cluster.store_pod(NS, NAME, "shop-a", urls["shop-a"])
        wait_for(cluster, lambda: pod_stats(urls["shop-a"])["resets"] == 1, "op-1's POST", first)
        first.process.signal(signal.SIGKILL)
        assert "healCount" not in status(cluster) or status(cluster)["healCount"] == 0
        wait_for(cluster, lambda: holder(cluster) == "op-2", "op-2 to take the Lease", second)
        wait_until(lambda: heal_checks(second) >= 4, timeout=60, what="op-2's checks")
        assert pod_stats(urls["shop-a"])["resets"] == 1, operator_log_tail(second)
        assert "shop-a" in status(cluster)["lastHeal"]["recentResets"]


def pod_stats(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/stats", timeout=5).json()
