"""The fault table: two operator replicas (install.yaml, leader election with the default
15 s / 10 s / 2 s) on the real control plane, under load, through one fault per row.

The operator runs as install.yaml deploys it: its Deployment's two pods, run by the
kubelet stand-in with their ServiceAccount's token and the real RBAC authorizer.
Each row gets a namespace of its own with a PromDemo of two app pods (autoHeal
every 1 s, cooldown 20 s, reached by pod IP), and load that keeps driving both
pods' inventories below zero: rounds of concurrent orders against each pod. The
test samples each pod's `inventory_resets_total` every 0.2 s, so it sees every
reset and when it came, whoever sent it; then it injects the fault and, for the
row's window, counts:

- resets per pod, and double resets: two resets of one pod surely less than the
  cooldown apart (each reset is known within its sampling interval) — the target is
  0 in every row — and the shortest gap the samples allow between two resets of a pod;
- the InventoryReset Events and the PromDemo's status writes (the audit log);
- time to recover: from the fault to the first heal check after it;
- failover, where the leader is lost: from the fault to the first heal check of
  the next leader;
- whether the PromDemo is left stuck (finalizers) or unhealed at the end.

The figures go to docs/faults.json with PROMDEMO_FAULT_TABLE=1 (then
`python -m tests.support.fault_table` writes the table into docs/operator.md).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import fault_table
from tests.support.cluster import (
    INSTALL_YAML,
    get_json,
    lease_outlasting_restarts,
    operator_processes,
    ready,
    wait,
)
from tests.support.controlplane import ControlPlane
from tests.support.kubelet import Kubelet
from tests.support.leadership import LEASE, holder, metrics_text, operator_process, sample
from tests.support.prometheus import run_alertmanager
from tests.support.serviceproxy import ServiceProxy

pytestmark = pytest.mark.cluster

OPERATOR_NS = "promdemo-system"
COOLDOWN = 20.0
LOAD_CONCURRENCY = 8
LOAD_PAUSE = 0.7


# --------------------------------------------------------------------------- the operator


def operator_pods(cp: ControlPlane, *, timeout: float = 60) -> list[dict[str, Any]]:
    argv = ["get", "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=promdemo-operator"]
    pods = json.loads(cp.kubectl(*argv, "-o", "json", timeout=timeout).stdout)
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


metrics_of = metrics_text


@pytest.fixture(scope="module")
def operators(control_plane: ControlPlane, kubelet: Kubelet) -> ControlPlane:
    """install.yaml applied as a user would: two operator pods, one holding the Lease.

    Left installed for the rest of the session, as the cluster tier's other tests
    expect the operator to be."""
    control_plane.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
    wait(
        lambda: len([p for p in operator_pods(control_plane) if ready(p)]) == 2,
        "two ready operator pods",
        kubelet=kubelet,
        timeout=180,
    )
    names = {p["metadata"]["name"] for p in operator_pods(control_plane)}
    wait(lambda: holder(control_plane) in names, "a leader", kubelet=kubelet)
    return control_plane


# --------------------------------------------------------------------------- a demo under load


@dataclass
class Demo:
    """A PromDemo of two pods under load, and every reset of its pods as the test saw it."""

    cp: ControlPlane
    kubelet: Kubelet
    namespace: str
    name: str = "shop"
    pods: dict[str, str] = field(default_factory=dict)  # name -> IP
    #: name -> one (earliest, latest) monotonic interval per reset the test saw
    resets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _counts: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    heal_checks: list[float] = field(default_factory=list)  # times a new heal check was seen
    #: spec.autoHeal keys over the row's defaults (e.g. source: alertmanager)
    auto_heal: dict[str, Any] = field(default_factory=dict)
    #: Called while waiting for the pods to be healed (Alertmanager's repeated notifications)
    while_waiting: Callable[[], None] | None = None
    _checks: dict[str, float] = field(default_factory=dict)

    def start(self) -> Demo:
        self.cp.kubectl("create", "namespace", self.namespace)
        body = {
            "apiVersion": "promdemo.dev/v1alpha1",
            "kind": "PromDemo",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "replicas": 2,
                "app": {"simulation": {
                    "dependencyMinSeconds": 0.01, "dependencyMaxSeconds": 0.05,
                    "dependencyFailureRate": 0, "processingMinSeconds": 0.01,
                    "processingMaxSeconds": 0.05,
                }},
                "autoHeal": {"interval": "1s", "cooldown": f"{COOLDOWN:g}s",
                             "podAccess": "podIP", **self.auto_heal},
                "monitoring": {"serviceMonitor": False, "prometheusRule": False},
            },
        }  # fmt: skip
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

        def ready_pods() -> dict[str, str]:
            pods = get_json(self.cp, "pods", "-n", self.namespace)["items"]
            return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods if ready(p)}

        wait(lambda: len(ready_pods()) == 2, "two ready app pods", kubelet=self.kubelet,
             timeout=180)  # fmt: skip
        self.pods = ready_pods()
        self.resets = {p: [] for p in self.pods}
        for target in (self._sample, self._watch_checks, self._load):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    # -- what the test watches ------------------------------------------------------------

    def _sample(self) -> None:
        """Each pod's reset counter every 0.2 s: a reset seen happened between the pod's
        previous read and this one, kept as that interval (earliest, latest)."""
        last_read = {pod: time.monotonic() for pod in self.pods}
        while not self._stop.wait(0.2):
            for pod, ip in self.pods.items():
                last_read.setdefault(pod, time.monotonic())  # a pod added by the row
                count = sample(metrics_of_app(ip), "inventory_resets_total")
                now = time.monotonic()
                if count is None:
                    continue
                seen = self._counts.get(pod, 0.0)
                self.resets[pod].extend([(last_read[pod], now)] * int(count - seen))
                self._counts[pod] = max(seen, count)
                last_read[pod] = now

    def _watch_checks(self) -> None:
        """The operators' heal checks of this PromDemo: when a new one was seen."""
        labels = f'namespace="{self.namespace}",promdemo="{self.name}"'
        while not self._stop.wait(0.2):
            for op in operator_pods_cached(self.cp):
                checks = sample(metrics_of(op), "promdemo_heal_checks_total", labels)
                if checks is not None and checks > self._checks.get(op, 0.0):
                    self.heal_checks.append(time.monotonic())
                if checks is not None:
                    self._checks[op] = checks

    def _load(self) -> None:
        def order(ip: str) -> None:
            req = urllib.request.Request(f"http://{ip}:8080/order", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
            except (OSError, urllib.error.URLError):
                pass

        with ThreadPoolExecutor(max_workers=LOAD_CONCURRENCY * 2) as pool:
            while not self._stop.wait(LOAD_PAUSE):
                ips = [ip for ip in self.pods.values() for _ in range(LOAD_CONCURRENCY)]
                list(pool.map(order, ips))

    def first_check_after(self, moment: float, *, timeout: float = 120) -> float:
        """Seconds from `moment` to the first heal check seen after it."""
        wait_until_true(lambda: any(t > moment for t in self.heal_checks), timeout,
                        "a heal check after the fault")  # fmt: skip
        return min(t for t in self.heal_checks if t > moment) - moment

    def double_resets(self) -> int:
        """Resets of a pod surely less than the cooldown after its previous one: even the
        widest gap the samples allow (first's earliest → second's latest) is shorter."""
        return sum(
            1
            for times in self.resets.values()
            for (first, _), (_, second) in itertools.pairwise(times)
            if second - first < COOLDOWN
        )

    def shortest_gap(self) -> str | None:
        """The shortest time that can have passed between two resets of one pod."""
        gaps = [
            second - first
            for times in self.resets.values()
            for (_, first), (second, _) in itertools.pairwise(times)
        ]
        return f"≥ {min(gaps):.1f} s (cooldown {COOLDOWN:g} s)" if gaps else None

    def events(self) -> int:
        items = get_json(self.cp, "events", "-n", self.namespace)["items"]
        return sum(int(e.get("count") or 1) for e in items if e.get("reason") == "InventoryReset")

    def status_writes(self) -> int:
        return sum(
            1
            for e in self.cp.audit_events()
            if e.get("stage") == "ResponseComplete"
            and (e.get("objectRef") or {}).get("namespace") == self.namespace
            and (e.get("objectRef") or {}).get("resource") == "promdemos"
            and (e.get("objectRef") or {}).get("subresource") == "status"
            and e.get("verb") == "patch"
        )

    def stuck_or_unhealed(self) -> str:
        """After the row: the PromDemo deleted must go (no stuck finalizer) — and before
        that, no pod may still be below zero past one cooldown and a check."""
        problems = []
        deadline = time.monotonic() + COOLDOWN + 5
        negative: list[str] = []
        while time.monotonic() < deadline:
            negative = [p for p, ip in self.pods.items() if (app_inventory(ip) or 0) < 0]
            if not negative:
                break
            if self.while_waiting is not None:
                self.while_waiting()
            time.sleep(0.5)
        self.stop()
        if negative:
            problems.append(f"unhealed: {', '.join(sorted(negative))}")
        self.cp.kubectl("delete", "promdemo", self.name, "-n", self.namespace,
                        "--wait=true", "--timeout=60s", check=False)  # fmt: skip
        if self.cp.get(f"/apis/promdemo.dev/v1alpha1/namespaces/{self.namespace}"
                       f"/promdemos/{self.name}") is not None:  # fmt: skip
            problems.append("stuck: the PromDemo was not deleted within 60 s")
        self.cp.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
        return "; ".join(problems) or "none"

    def figures(self, fault: str, **extra: Any) -> dict[str, Any]:
        counts = sorted(len(t) for t in self.resets.values())
        return {
            "fault": fault,
            "resets": "–".join(str(c) for c in counts) if counts else "0",
            "double_resets": self.double_resets(),
            "shortest_gap": self.shortest_gap(),
            "events": self.events(),
            "status_writes": self.status_writes(),
            **extra,
        }


_op_cache: dict[str, Any] = {"at": 0.0, "ips": []}


def operator_pods_cached(cp: ControlPlane) -> list[str]:
    """The operator pods' IPs, re-read at most every 2 s (the sampler runs every 0.2 s)."""
    if time.monotonic() - _op_cache["at"] > 2:
        # The API server may be down or frozen (rows do that): keep the last answer.
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            _op_cache["ips"] = [p["status"].get("podIP") for p in operator_pods(cp, timeout=3)
                                if p["status"].get("podIP")]  # fmt: skip
        _op_cache["at"] = time.monotonic()
    return _op_cache["ips"]


def metrics_of_app(ip: str) -> str | None:
    return metrics_of(ip)


def app_inventory(ip: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/inventory", timeout=2) as r:
            return float(json.loads(r.read())["inventory"])
    except (OSError, ValueError, KeyError):
        return None


def wait_until_true(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def demo(
    operators: ControlPlane, kubelet: Kubelet, request: pytest.FixtureRequest
) -> Iterator[Demo]:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())
    ns = "faults-" + name[:50].strip("-")
    d = Demo(operators, kubelet, ns).start()
    yield d
    d.stop()


def warm_up(demo: Demo) -> None:
    """Until both pods have been driven below zero and reset once (the load works)."""
    wait_until_true(lambda: all(demo.resets.values()), 120, "a first reset of each pod")


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def conclude(demo: Demo, row: str, fault: str, **extra: Any) -> dict[str, Any]:
    """One more cooldown under load, then the row's figures, recorded and checked."""
    time.sleep(COOLDOWN)
    figures = demo.figures(fault, **extra)
    figures["stuck"] = demo.stuck_or_unhealed()
    fault_table.record(row, figures)
    assert figures["double_resets"] == 0, demo.resets
    assert figures["stuck"] == "none"
    return figures


# --------------------------------------------------------------------------- the rows


def kill_leader_at_resets(
    cp: ControlPlane, kubelet: Kubelet, demo: Demo, *, delete_pod: bool, times: int = 3
) -> tuple[list[float], list[str]]:
    """SIGKILL the leader `times` times, each the moment the test sees a pod count a reset;
    with `delete_pod` its pod is force-deleted at once (gone for good, as on a lost node).
    The failovers (kill → first heal check) and who led after each."""
    failovers, leaders = [], []
    for _ in range(times):
        before = sum(len(t) for t in demo.resets.values())
        wait_until_true(lambda b=before: sum(len(t) for t in demo.resets.values()) > b, 60,
                        "the next reset")  # fmt: skip
        leader = holder(cp)
        assert leader is not None
        operator_process(kubelet, leader).send_signal(signal.SIGKILL)
        killed = time.monotonic()
        if delete_pod:
            cp.kubectl("delete", "pod", leader, "-n", OPERATOR_NS, "--grace-period=0", "--force")
        failovers.append(demo.first_check_after(killed))
        new = holder(cp)
        leaders.append("the same pod, restarted" if new == leader else "the other replica")
        wait(lambda: len([p for p in operator_pods(cp) if ready(p)]) == 2,
             "two ready operator replicas again", kubelet=kubelet)  # fmt: skip
    return failovers, leaders


def failover_text(failovers: list[float], leaders: list[str]) -> str:
    who = ", ".join(sorted(set(leaders)))
    return (
        f"median {seconds(statistics.median(failovers))}, max {seconds(max(failovers))} "
        f"({len(failovers)} kills; new leader: {who})"
    )


@pytest.mark.parametrize(
    ("delete_pod", "row", "fault"),
    [
        (False, "01-leader-sigkill-restarted", "leader SIGKILLed at a reset; the kubelet "
         "restarts it (same pod name: it takes its own Lease back)"),
        (True, "02-leader-sigkill-pod-gone", "leader SIGKILLed at a reset and its pod "
         "force-deleted (the standby waits out the 15 s lease)"),
    ],
    ids=["restarted", "pod-gone"],
)  # fmt: skip
def test_leader_sigkilled_at_a_reset(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo, delete_pod: bool, row: str, fault: str
) -> None:
    warm_up(demo)
    failovers, leaders = kill_leader_at_resets(operators, kubelet, demo, delete_pod=delete_pod)
    conclude(demo, row, fault, failover=failover_text(failovers, leaders),
             recovery=seconds(max(failovers)))  # fmt: skip


def test_leader_sigstopped_past_its_lease(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo
) -> None:
    warm_up(demo)
    leader = holder(operators)
    assert leader is not None
    process = operator_process(kubelet, leader)
    process.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        failover = demo.first_check_after(stopped)
        time.sleep(max(0.0, 25 - (time.monotonic() - stopped)))  # past the 15 s lease
    finally:
        process.send_signal(signal.SIGCONT)
    code = process.wait(timeout=20)  # the woken leader exits at once
    assert code == 1, f"the woken leader exited with {code}"
    conclude(demo, "03-leader-sigstop", "leader SIGSTOPped 25 s (lease 15 s), then woken",
             failover=seconds(failover), recovery=seconds(failover))  # fmt: skip


def test_kube_apiserver_restarted(operators: ControlPlane, kubelet: Kubelet, demo: Demo) -> None:
    warm_up(demo)
    before, exits = holder(operators), restarts(operators)
    started = time.monotonic()
    operators.restart_apiserver()
    back = time.monotonic() - started
    recovery = demo.first_check_after(time.monotonic())
    conclude(
        demo,
        "04-kube-apiserver-restart",
        f"kube-apiserver restarted ({seconds(back)} down)",
        recovery=f"{seconds(back + recovery)} (first heal check after it answers: "
        f"{seconds(recovery)})",
        failover=leadership(operators, exits, before),
    )


def control_plane_process(cp: ControlPlane, program: str) -> int:
    """The pid of `program` (etcd, kube-apiserver) in the control plane's network namespace."""
    pids = subprocess.run(["ip", "netns", "pids", cp.netns], capture_output=True, text=True,
                          check=True).stdout.split()  # fmt: skip
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == program:
                return int(pid)
    raise AssertionError(f"no {program} process in {cp.netns}")


def freeze(cp: ControlPlane, program: str, duration: float) -> None:
    """SIGSTOP `program` of the control plane for `duration` seconds, then SIGCONT."""
    pid = control_plane_process(cp, program)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(duration)
    finally:
        os.kill(pid, signal.SIGCONT)


def restarts(cp: ControlPlane) -> int:
    """Exits of operator processes so far (the kubelet's restartCount, summed over pods)."""
    return sum(
        int(c.get("restartCount") or 0)
        for p in operator_pods(cp)
        for c in (p.get("status") or {}).get("containerStatuses") or []
    )


def leadership(cp: ControlPlane, exits_before: int, holder_before: str | None) -> str:
    """What became of the leader: measured, for the table."""
    exits = restarts(cp) - exits_before
    after = holder(cp)
    moved = "the same pod" if after == holder_before else "the other replica"
    if exits == 0 and after == holder_before:
        return "leader kept (no exit)"
    return f"{exits} operator exit(s) (renew deadline); Lease now held by {moved}"


def resets_between(demo: Demo, start: float, end: float) -> int:
    return sum(1 for times in demo.resets.values() for _, t in times if start <= t <= end)


@dataclass
class Frozen:
    """What a freeze of a control-plane process did: resets in it, recovery, the leader."""

    resets_during: int
    resets_after_deadline: int
    recovery: float
    leadership: str


def frozen_under_load(cp: ControlPlane, demo: Demo, program: str, duration: float) -> Frozen:
    warm_up(demo)
    before, exits = holder(cp), restarts(cp)
    start = time.monotonic()
    freeze(cp, program, duration)
    end = time.monotonic()
    recovery = demo.first_check_after(end)
    return Frozen(
        resets_during=resets_between(demo, start, end),
        # The renew deadline (10 s) and slack: no leader may act after it.
        resets_after_deadline=resets_between(demo, start + 12, end),
        recovery=recovery,
        leadership=leadership(cp, exits, before),
    )


def test_etcd_frozen(operators: ControlPlane, kubelet: Kubelet, demo: Demo) -> None:
    frozen = frozen_under_load(operators, demo, "etcd", 20)
    conclude(
        demo,
        "05-etcd-frozen",
        "etcd frozen 20 s (SIGSTOP, then SIGCONT): the API server cannot answer writes",
        recovery=f"{seconds(frozen.recovery)} after etcd answers "
        f"({frozen.resets_during} resets while frozen)",
        failover=frozen.leadership,
    )


def test_kube_apiserver_unreachable_for_60s(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo
) -> None:
    """Decided: healing stops. A leader that cannot renew its Lease exits at its renew
    deadline (10 s), and no replica can take the Lease while the API server is away;
    a reset is never sent by a replica that cannot prove it leads."""
    frozen = frozen_under_load(operators, demo, "kube-apiserver", 60)
    late = frozen.resets_after_deadline
    conclude(
        demo,
        "06-kube-apiserver-unreachable",
        "kube-apiserver unreachable 60 s (frozen), pods reachable: healing stops within the "
        "10 s renew deadline, by design",
        recovery=f"{seconds(frozen.recovery)} after it answers ({late} resets after the deadline)",
        failover=frozen.leadership,
    )
    assert late == 0, "a reset was sent while no replica could hold the Lease"


def test_namespace_deleted_while_the_operator_is_down(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo
) -> None:
    """The PromDemo's finalizer holds its namespace in Terminating while no operator runs;
    once the operator is back, the namespace must finish (no PromDemo left stuck)."""
    warm_up(demo)
    deploy = ("deployment/promdemo-operator", "-n", OPERATOR_NS)
    operators.kubectl("scale", *deploy, "--replicas=0")
    wait(lambda: not operator_pods(operators), "no operator pod", kubelet=kubelet)
    figures = demo.figures(
        "namespace deleted with a PromDemo in it while the operator is down (0 replicas), "
        "then the operator started"
    )
    demo.stop()
    operators.kubectl("delete", "namespace", demo.namespace, "--wait=false")
    ns_path = f"/api/v1/namespaces/{demo.namespace}"
    time.sleep(5)
    held = operators.get(ns_path)
    assert held is not None, "the namespace went without the operator: no finalizer held it"
    assert held["status"]["phase"] == "Terminating"
    operators.kubectl("scale", *deploy, "--replicas=2")
    started = time.monotonic()
    try:
        wait(lambda: operators.get(ns_path) is None, "the namespace to finish",
             kubelet=kubelet, timeout=180)  # fmt: skip
        gone = time.monotonic() - started
        figures["stuck"] = "none"
        figures["recovery"] = f"namespace gone {seconds(gone)} after the operator was scaled up"
    finally:
        wait(lambda: len([p for p in operator_pods(operators) if ready(p)]) == 2,
             "two ready operator replicas again", kubelet=kubelet, timeout=180)  # fmt: skip
    fault_table.record("07-namespace-deleted-operator-down", figures)
    assert figures["double_resets"] == 0, demo.resets


WEBHOOK_TOKEN = "fault-table-webhook-token"


def with_webhook_token(cp: ControlPlane) -> None:
    """The operator pods run with WEBHOOK_TOKEN (their receiver's and Alertmanager's)."""
    secret = ("secret", "generic", "promdemo-webhook-token", "-n", OPERATOR_NS,
              f"--from-literal=token={WEBHOOK_TOKEN}")  # fmt: skip
    if cp.get(f"/api/v1/namespaces/{OPERATOR_NS}/secrets/promdemo-webhook-token") is None:
        cp.kubectl("create", *secret)
        # The token is read at start: new pods.
        cp.kubectl("rollout", "restart", "deployment/promdemo-operator", "-n", OPERATOR_NS)
        cp.kubectl("rollout", "status", "deployment/promdemo-operator", "-n", OPERATOR_NS,
                   "--timeout=180s", timeout=200)  # fmt: skip


def notification(demo: Demo) -> bytes:
    """What Alertmanager sends for InventoryNegative firing on both pods of `demo`."""
    alerts = [
        {"status": "firing", "startsAt": "2026-01-01T00:00:00Z",
         "labels": {"alertname": "InventoryNegative", "namespace": demo.namespace,
                    "promdemo": demo.name, "pod": pod}}
        for pod in demo.pods
    ]  # fmt: skip
    return json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()


def notify(ip: str, body: bytes) -> str:
    """POST one notification to an operator pod's webhook port; its outcome, for counting."""
    req = urllib.request.Request(
        f"http://{ip}:8082/alertmanager", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return str(r.status)
    except urllib.error.HTTPError as e:
        return str(e.code)
    except (OSError, urllib.error.URLError):
        return "refused"


def test_a_burst_of_alertmanager_notifications_during_a_change_of_leader(
    operators: ControlPlane, kubelet: Kubelet, request: pytest.FixtureRequest
) -> None:
    """1,000 notifications (both pods firing) to the operator pods, as the Service would
    spread them, while the leader is SIGKILLed and its pod deleted: a standby answers 503
    and a dead pod refuses them (Alertmanager retries both), the leader's answers reset
    each pod at most once per cooldown."""
    with_webhook_token(operators)

    def names() -> set[str]:
        return {p["metadata"]["name"] for p in operator_pods(operators) if ready(p)}

    wait(lambda: len(names()) == 2 and holder(operators) in names(), "two replicas, a leader",
         kubelet=kubelet, timeout=180)  # fmt: skip
    demo = Demo(operators, kubelet, "faults-alertmanager-burst",
                auto_heal={"source": "alertmanager"}).start()  # fmt: skip
    request.addfinalizer(demo.stop)
    body = notification(demo)
    outcomes: dict[str, int] = {}
    wait_until_true(lambda: all((app_inventory(ip) or 0) < 0 for ip in demo.pods.values()),
                    60, "both pods below zero")  # fmt: skip
    killed_at: list[float] = []

    def kill_the_leader() -> None:
        leader = holder(operators)
        assert leader is not None
        operator_process(kubelet, leader).send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())
        operators.kubectl("delete", "pod", leader, "-n", OPERATOR_NS, "--grace-period=0",
                          "--force")  # fmt: skip

    killer = threading.Timer(5.0, kill_the_leader)
    killer.start()
    ips = operator_pods_cached(operators)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(0, 1000, 8):  # 1,000 notifications in about 30 s
            ips = operator_pods_cached(operators) or ips
            batch = [ips[(i + k) % len(ips)] for k in range(min(8, 1000 - i))]
            for outcome in pool.map(lambda ip: notify(ip, body), batch):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            time.sleep(0.24)
    killer.join()
    failover = demo.first_check_after(killed_at[0])

    def still_firing() -> None:  # Alertmanager repeats a firing group's notification
        for ip in operator_pods_cached(operators):
            notify(ip, body)

    demo.while_waiting = still_firing
    answered = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
    conclude(
        demo,
        "08-alertmanager-burst-leader-change",
        "1,000 Alertmanager notifications (both pods firing) over ~30 s, the leader "
        "SIGKILLed and its pod deleted 5 s in",
        recovery=f"answers: {answered}",
        failover=seconds(failover),
    )
    assert sum(outcomes.values()) == 1000


def test_etcd_restarted(operators: ControlPlane, kubelet: Kubelet, demo: Demo) -> None:
    """etcd really stopped (SIGTERM) and started again on its data directory; the API server
    stays up and reconnects. Unlike a freeze, every connection to etcd breaks."""
    warm_up(demo)
    before, exits = holder(operators), restarts(operators)
    start = time.monotonic()
    operators.restart_etcd()
    down = time.monotonic() - start
    answering = time.monotonic()

    def reads_etcd() -> bool:
        try:
            return operators.get(LEASE) is not None
        except OSError:  # 5xx while the API server reconnects to etcd
            return False

    wait_until_true(reads_etcd, 60, "the API server to read etcd again")
    recovery = demo.first_check_after(answering)
    conclude(
        demo,
        "09-etcd-restart",
        f"etcd restarted (stopped, started again on the same data dir: {seconds(down)} down), "
        "the API server left up",
        recovery=f"{seconds(recovery)} after etcd answers "
        f"({resets_between(demo, start, answering)} resets while it was down)",
        failover=leadership(operators, exits, before),
    )


OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:promdemo-operator"


def lists_by_operator(cp: ControlPlane, since: float) -> dict[str, int]:
    """The operator's list requests (a watch that got 410 Gone lists again) since `since`
    (seconds since the epoch), by resource, from the audit log."""
    counts: dict[str, int] = {}
    for e in cp.audit_events():
        ref = e.get("objectRef") or {}
        if (e.get("verb") != "list" or e.get("stage") != "ResponseComplete"
                or (e.get("user") or {}).get("username") != OPERATOR_USER
                or ref.get("resource") == "leases"):  # fmt: skip
            continue
        received = e["requestReceivedTimestamp"].replace("Z", "+00:00")
        if datetime.fromisoformat(received).timestamp() >= since:
            counts[ref.get("resource", "?")] = counts.get(ref.get("resource", "?"), 0) + 1
    return counts


def test_watch_broken_by_etcd_compaction(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo
) -> None:
    """410 Gone: kube-apiserver restarted over an etcd compacted at its latest revision, as in
    tests/cluster/test_watch_gap.py, so every watch resuming from its last resourceVersion
    gets 410 Gone and lists again. With install.yaml's 10 s renew deadline the leader would
    exit during the restart (row 04) and a fresh process list everything without any 410:
    this row runs the operator with a lease that outlasts the restart (LONG_LEASE), so the
    same leader process relists and goes on healing."""
    with lease_outlasting_restarts(operators, kubelet):
        warm_up(demo)
        processes, before, exits = (
            operator_processes(operators),
            holder(operators),
            restarts(operators),
        )
        start, wall = time.monotonic(), time.time()
        operators.restart_apiserver(before_start=operators.etcd_compact)
        back = time.monotonic() - start
        recovery = demo.first_check_after(time.monotonic())
        # Kept in the block: the roll back to install.yaml's args would be a change of leader.
        time.sleep(COOLDOWN)
        lists = lists_by_operator(operators, wall)
        figures = demo.figures(
            "watch broken by etcd compaction: kube-apiserver restarted over an etcd compacted "
            f"at its latest revision ({seconds(back)} down): a watch resuming from its "
            "resourceVersion gets 410 Gone; "
            "lease 120 s / renew deadline 90 s so the same leader lives through it",
            recovery=f"{seconds(back + recovery)} (first heal check after it answers: "
            f"{seconds(recovery)}); lists by the operator after it: "
            + ", ".join(f"{n} {r}" for r, n in sorted(lists.items())),
            failover=leadership(operators, exits, before),
        )
        assert operator_processes(operators) == processes, "an operator restarted: no relist"
        figures["stuck"] = demo.stuck_or_unhealed()
    fault_table.record("10-watch-410-relist", figures)
    assert figures["double_resets"] == 0, demo.resets
    assert figures["stuck"] == "none"
    assert lists.get("promdemos"), f"the PromDemos were not listed again: {lists}"
    assert lists.get("pods"), f"the pods were not listed again: {lists}"


def order(ip: str) -> None:
    """One order from the app at `ip` (its stock goes down; below zero when oversold)."""
    req = urllib.request.Request(f"http://{ip}:8080/order", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    except (OSError, urllib.error.URLError):
        pass


def reset_requests(ip: str, status: str) -> float:
    """The app's answers to POST /inventory/reset with `status` (its http_requests_total)."""
    labels = f'method="POST",route="/inventory/reset",status="{status}"'
    return sample(metrics_of_app(ip), "http_requests_total", labels) or 0.0


def test_a_pod_ip_given_to_another_promdemos_pod(
    operators: ControlPlane, kubelet: Kubelet, demo: Demo
) -> None:
    """One of the demo's pods is deleted and a pod of another PromDemo (healing off, stock 1,
    driven below zero) gets its IP at once. The leader is paused ~5 s (under its 10 s renew
    deadline) across the swap, so the checks it runs when it wakes still go by its last view
    of the pods, to the reused IP: the other app must get no reset (the reset token is the
    PromDemo's own; the other app refuses it with 401)."""
    warm_up(demo)
    # The victim leaves the load: it stays above zero after its last reset, so by the swap
    # it is out of cooldown and a check that finds its IP below zero would reset it.
    victim, reused_ip = sorted(demo.pods.items())[0]
    demo.pods = {p: ip for p, ip in demo.pods.items() if p != victim}  # no load, no sampling
    rival_ns = f"{demo.namespace}-rival"
    operators.kubectl("create", "namespace", rival_ns)
    rival = {
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": "rival", "namespace": rival_ns},
        "spec": {"replicas": 1, "app": {"initialInventory": 1}, "autoHeal": {"enabled": False},
                 "monitoring": {"serviceMonitor": False, "prometheusRule": False}},
    }  # fmt: skip
    operators.kubectl("apply", "-f", "-", input=yaml.safe_dump(rival))

    def rival_pods() -> list[dict[str, Any]]:
        pods = get_json(operators, "pods", "-n", rival_ns)["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    wait(lambda: any(ready(p) for p in rival_pods()), "the rival's pod ready", kubelet=kubelet,
         timeout=180)  # fmt: skip
    (first_rival,) = rival_pods()
    # Until the victim's last reset (it may get one more, if it was below zero when it left
    # the load) is a cooldown old, by its own counter.
    count = sample(metrics_of_app(reused_ip), "inventory_resets_total")
    changed = demo.resets[victim][-1][1]
    if count != demo._counts.get(victim):  # a reset since the sampler's last read
        changed = time.monotonic()
    deadline = time.monotonic() + 3 * COOLDOWN
    while time.monotonic() - changed < COOLDOWN + 1.5 or (app_inventory(reused_ip) or -1) < 0:
        assert time.monotonic() < deadline, "the victim was not left out of cooldown"
        now = sample(metrics_of_app(reused_ip), "inventory_resets_total")
        if now != count:
            count, changed = now, time.monotonic()
        time.sleep(0.2)
    kubelet.pin_next_ip(rival_ns, reused_ip)
    leader = holder(operators)
    assert leader is not None
    process = operator_process(kubelet, leader)
    force = ("--grace-period=0", "--force")
    process.send_signal(signal.SIGSTOP)
    paused = time.monotonic()
    try:
        operators.kubectl("delete", "pod", first_rival["metadata"]["name"], "-n", rival_ns, *force)
        operators.kubectl("delete", "pod", victim, "-n", demo.namespace, *force)
        # The rival's next pod starts on the freed IP (told from the victim by its reset
        # counter: the victim's is >= 1 after warm_up); concurrent orders oversell its stock
        # of 1 (each sees 1 in stock before any takes it) and drive it below zero.
        rival_below_zero = False
        deadline = time.monotonic() + 6.0
        with ThreadPoolExecutor(max_workers=LOAD_CONCURRENCY) as pool:
            while time.monotonic() < deadline and not rival_below_zero:
                if sample(metrics_of_app(reused_ip), "inventory_resets_total") == 0:
                    list(pool.map(order, [reused_ip] * LOAD_CONCURRENCY))
                    rival_below_zero = (app_inventory(reused_ip) or 0) < 0
                time.sleep(0.1)
        rival_up = time.monotonic() - paused
    finally:
        process.send_signal(signal.SIGCONT)
    woke = time.monotonic()
    paused = woke - paused
    assert rival_below_zero, (
        f"the rival's app was not below zero on the reused IP in {paused:.1f} s"
    )

    def on_the_reused_ip() -> list[dict[str, Any]]:
        return [p for p in rival_pods() if p["status"].get("podIP") == reused_ip]

    wait(lambda: len(on_the_reused_ip()) == 1, "the rival's pod on the reused IP", kubelet=kubelet)
    (rival_pod,) = on_the_reused_ip()
    demo.first_check_after(woke)
    time.sleep(5)  # the checks after the wake-up, by the old view and the new one
    rival_resets = sample(metrics_of_app(reused_ip), "inventory_resets_total")
    assert rival_resets is not None, "the rival's app stopped answering"
    refused = reset_requests(reused_ip, "401")
    # The demo's replacement pod is sampled too (and must be healed by the end).
    replacement = {p["metadata"]["name"]: p["status"]["podIP"]
                   for p in get_json(operators, "pods", "-n", demo.namespace)["items"]
                   if ready(p) and p["metadata"]["name"] not in demo.pods
                   and p["metadata"]["name"] != victim}  # fmt: skip
    for pod in replacement:
        demo.resets.setdefault(pod, [])
    demo.pods = {**demo.pods, **replacement}
    figures = conclude(
        demo,
        "11-pod-ip-reused-by-another-promdemo",
        "a pod deleted and another PromDemo's pod (healing off, driven below zero) given its "
        f"IP at once (below zero {seconds(rival_up)} after the delete); the leader paused "
        f"{seconds(paused)} across the swap, so its next checks go by its old view of the pods",
        recovery=f"the other PromDemo's app ({rival_pod['metadata']['name']}): "
        f"{rival_resets:g} resets, {refused:g} reset requests refused (401: not its token)",
        failover="leader kept (paused under its renew deadline)"
        if holder(operators) == leader
        else "the leader changed",
    )
    operators.kubectl("delete", "namespace", rival_ns, "--wait=false", check=False)
    assert rival_resets == 0, figures


def test_a_notification_the_service_sends_to_the_standby_reaches_the_leader(
    operators: ControlPlane, kubelet: Kubelet, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The operator's Service selects both replicas, and both are Ready (readiness does not
    follow the Lease: a rollout's new pods wait as standbys). Alertmanager's notification,
    sent through the Service's webhook port with its first connection balanced to the
    standby, gets the standby's 503 naming the leader; Alertmanager retries on a new
    connection, which reaches the leader, and each pod is reset once."""
    with_webhook_token(operators)
    wait(lambda: len([p for p in operator_pods(operators) if ready(p)]) == 2
         and holder(operators) in {p["metadata"]["name"] for p in operator_pods(operators)},
         "two ready replicas, one leading", kubelet=kubelet, timeout=180)  # fmt: skip
    demo = Demo(operators, kubelet, "faults-standby-webhook",
                auto_heal={"source": "alertmanager"}).start()  # fmt: skip
    request.addfinalizer(lambda: operators.kubectl("delete", "namespace", demo.namespace,
                                                   "--wait=false", check=False))  # fmt: skip
    request.addfinalizer(demo.stop)
    wait_until_true(lambda: all((app_inventory(ip) or 0) < 0 for ip in demo.pods.values()),
                    60, "both pods below zero")  # fmt: skip
    leader = holder(operators)
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in operator_pods(operators)}
    (standby_ip,) = [ip for name, ip in pods.items() if name != leader]

    # Asked directly, the standby says who leads.
    answer = urllib.request.Request(f"http://{standby_ip}:8082/alertmanager", data=b"{}",
                                    method="POST")  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(answer, timeout=5)
    assert refused.value.code == 503
    assert json.loads(refused.value.read())["leader"] == leader

    before = sample(metrics_of(standby_ip), "promdemo_operator_standby_webhook_refused_total")
    alerts = [
        {"labels": {"alertname": "InventoryNegative", "namespace": demo.namespace,
                    "promdemo": demo.name, "pod": pod}}
        for pod in demo.pods
    ]  # fmt: skip
    with (
        ServiceProxy(operators, OPERATOR_NS, "promdemo-operator", "webhook") as proxy,
        run_alertmanager(tmp_path, f"{proxy.url}/alertmanager", bearer_token=WEBHOOK_TOKEN,
                         group_by=("alertname", "namespace", "promdemo"),
                         send_resolved=False) as alertmanager,
    ):  # fmt: skip
        proxy.send_next_to(standby_ip)
        sent = time.monotonic()
        httpx.post(f"{alertmanager.url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
        wait_until_true(lambda: all(demo.resets.values()), 60, "each pod reset")
        healed = time.monotonic() - sent
    after = sample(metrics_of(standby_ip), "promdemo_operator_standby_webhook_refused_total")
    assert proxy.connections[0] == standby_ip, proxy.connections
    assert pods[leader] in proxy.connections, proxy.connections
    assert (after or 0) > (before or 0), "the standby answered no notification"
    time.sleep(2)
    assert sorted(len(t) for t in demo.resets.values()) == [1, 1], demo.resets
    print(f"healed {healed:.1f} s after the alert; connections: {proxy.connections}")
