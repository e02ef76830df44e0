"""The operator's life on a control plane of its own: a watch gap of the children's
watches alone, a rotated reset token, prometheus-operator's CRDs installed late and
doctor's first example of docs/selection.md, SIGTERM with the API server up and frozen.

Its own control plane because each test does what the session's must not see:
the API server without its watch cache, a kubelet stand-in that keeps Secret
volumes in sync (ImageKubelet, every 2 s, as a kubelet does within a minute), the
monitoring CRDs (the session's doctor test needs them absent), and operator
processes signalled or killed. install.yaml's operator runs with a lease
that outlasts an API server restart (the same processes must live through the gap).

A watch gap that only the children's watches have: the Service watch gets 410 Gone
and lists again while the PromDemo watch resumes where it was. A Service deleted
during that gap never comes as a DELETED event and stays in kopf's index; before,
only a re-list of the PromDemo watch made the operator read the children from the
API, so this Service stayed missing until the resync (3 h). Now a child listed
again that the watches had seen before does it (`child_watch_relisted`). How the gap
is made one-sided: without the watch cache (`--watch-cache=false`) a resuming watch
is answered by etcd, which answers 410 Gone exactly when the resourceVersion was
compacted away. The PromDemo is touched last (its watch holds the newest
resourceVersion of the children's and its own), then, with the API server stopped,
the Service is deleted in etcd and etcd compacted at the PromDemo's
resourceVersion: every child watch resumes from an older one (410, a re-list), the
PromDemo watch from that one (no gap). The audit log shows which watches listed again.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import (
    INSTALL_YAML,
    LONG_LEASE,
    OPERATOR_NAMESPACE,
    condition,
    get_json,
    operator_pods,
    operator_processes,
    set_operator_args,
    wait,
)
from tests.support.console import promdemo_exe
from tests.support.controlplane import ControlPlane, require_controlplane
from tests.support.kubelet import Kubelet
from tests.support.kubelet_images import ImageKubelet
from tests.support.oversold_app import oversell
from tests.support.prometheus_operator import apply_crds

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

OPERATOR_USER = "system:serviceaccount:promdemo-system:promdemo-operator"


#: An app that oversells at once and is healed fast (no dependency failures: every
#: order is 200 or 409).
HEAL_SPEC: dict[str, Any] = {
    "replicas": 1,
    "app": {"initialInventory": 5, "simulation": {
        "dependencyFailureRate": 0, "dependencyMinSeconds": 0.5, "dependencyMaxSeconds": 0.8}},
    "autoHeal": {"interval": "1s", "for": "0s", "cooldown": "0s"},
}  # fmt: skip
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/promdemo-operator"
#: How long a SIGTERMed operator may take: its own bound is run.SHUTDOWN_GRACE_SECONDS
#: (8 s); the pod's grace period is 30 s, after which the kubelet would SIGKILL it.
EXIT_TIMEOUT = 25.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Kubelet, list[str]]]:
    """A control plane without watch cache, a kubelet that syncs Secret volumes, and
    install.yaml's operator with a lease that outlasts an API server restart."""
    require_controlplane()
    with (
        ControlPlane(apiserver_args=["--watch-cache=false"]) as cp,
        ImageKubelet(cp) as kubelet,
    ):
        cp.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
        wait(lambda: len(operator_pods(cp)) == 2, "two ready operator pods", kubelet=kubelet,
             timeout=180)  # fmt: skip
        args = operator_pods(cp)[0]["spec"]["containers"][0]["args"]
        set_operator_args(cp, kubelet, [*args, *LONG_LEASE])  # the cluster goes afterwards
        yield cp, kubelet, args


def apply_promdemo(cp: ControlPlane, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cp.kubectl("create", "namespace", namespace)
    cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    }))  # fmt: skip


def available(cp: ControlPlane, namespace: str, name: str) -> bool:
    obj: dict[str, Any] = get_json(cp, "promdemo", name, "-n", namespace)
    return condition(obj, "Available").get("status") == "True"


def status(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cp, "promdemo", name, "-n", namespace).get("status") or {}


def reset_token(cp: ControlPlane, namespace: str, name: str) -> str:
    secret = get_json(cp, "secret", f"{name}-reset-token", "-n", namespace)
    return base64.b64decode(secret["data"]["token"]).decode()


def app_pod(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    pods = get_json(cp, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")
    (pod,) = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    return pod


def leader(cp: ControlPlane) -> str:
    holder = ((cp.get(LEASE) or {}).get("spec") or {}).get("holderIdentity")
    assert holder, "no operator holds the Lease"
    return str(holder)


def operator_process(kubelet: Kubelet, pod: str) -> subprocess.Popen[bytes] | None:
    """The running operator process of pod `pod` (the kubelet stand-in's container)."""
    for p in list(kubelet.pods.values()):
        if (p.namespace, p.name) == (OPERATOR_NAMESPACE, pod) and p.containers:
            popen = p.containers[0].popen
            if popen is not None and popen.poll() is None:
                return popen
    return None


def apiserver_pid(cp: ControlPlane) -> int:
    pids = subprocess.run(["ip", "netns", "pids", cp.netns], capture_output=True, text=True,
                          check=True).stdout.split()  # fmt: skip
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "kube-apiserver":
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no kube-apiserver in {cp.netns}")


def exit_status(popen: subprocess.Popen[bytes], log: Any) -> int:
    """Wait for the SIGTERMed operator; fail with its log if it outlives EXIT_TIMEOUT."""
    try:
        return popen.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the operator did not exit {EXIT_TIMEOUT:.0f}s after SIGTERM\n{log()[-4000:]}")


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
    cluster: tuple[ControlPlane, Kubelet, list[str]],
) -> None:
    cp, kubelet, _ = cluster
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


def test_a_rotated_reset_token_keeps_the_healing_going(
    cluster: tuple[ControlPlane, Kubelet, list[str]],
) -> None:
    """docs/crd.md: delete the Secret to rotate the token. The operator makes a new one,
    the kubelet updates the pod's volume, the app re-reads the file, and the next heal
    (with the new token, from the operator's watch) works; the old token is refused."""
    cp, kubelet, _ = cluster
    ns = "rotate"
    apply_promdemo(cp, ns, "shop", HEAL_SPEC)
    wait(lambda: available(cp, ns, "shop"), "shop Available", kubelet=kubelet)
    pod = app_pod(cp, ns, "shop")
    url = f"http://{pod['status']['podIP']}:8080"
    first = reset_token(cp, ns, "shop")
    oversell(url, token=first)
    wait(lambda: status(cp, ns, "shop").get("healCount", 0) >= 1, "the first heal",
         kubelet=kubelet)  # fmt: skip

    stop = threading.Event()

    def trickle() -> None:  # orders keep coming while the token is rotated
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.post(f"{url}/order")
                stop.wait(0.2)

    load = threading.Thread(target=trickle, daemon=True)
    load.start()
    try:
        cp.kubectl("delete", "secret", "shop-reset-token", "-n", ns)
        wait(lambda: cp.kubectl("get", "secret", "shop-reset-token", "-n", ns,
                                check=False).returncode == 0 and
             reset_token(cp, ns, "shop") != first, "a new reset-token Secret",
             kubelet=kubelet, timeout=60)  # fmt: skip
        second = reset_token(cp, ns, "shop")
        rotated_at = datetime.now(UTC)
        # The kubelet's volume update (every 2 s here), then the app takes the new token.
        wait(lambda: httpx.post(f"{url}/inventory/reset", timeout=10,
                                headers={"Authorization": f"Bearer {first}"}).status_code == 401,
             "the old token refused by the app", kubelet=kubelet, timeout=30)  # fmt: skip

        def healed_since_rotation() -> bool:
            last = status(cp, ns, "shop").get("lastHeal") or {}
            when = last.get("time")
            return bool(when) and datetime.fromisoformat(when.replace("Z", "+00:00")) >= rotated_at

        oversell(url, token=second)
        wait(healed_since_rotation, "a heal after the rotation", kubelet=kubelet)
    finally:
        stop.set()
        load.join(timeout=30)
    assert status(cp, ns, "shop")["lastHeal"]["pod"] == pod["metadata"]["name"]
    assert "re-read" in kubelet.logs(ns, pod["metadata"]["name"])


#: The first `$ promdemo doctor -n demo` example of docs/selection.md.
SELECTION_DOC = Path(__file__).resolve().parents[2] / "docs" / "selection.md"
KPS = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus" / "kube-prometheus-stack.yaml"
#: What `promdemo doctor -n demo` may ask of the API server (docs/selection.md's table).
DOCTOR_VERBS = {
    ("promdemo.dev", "promdemos", "list"),
    ("apps", "deployments", "list"),
    ("", "services", "list"),
    ("", "secrets", "list"),
    ("monitoring.coreos.com", "servicemonitors", "list"),
    ("monitoring.coreos.com", "prometheusrules", "list"),
    ("monitoring.coreos.com", "prometheuses", "list"),
    ("", "namespaces", "get"),
    ("", "services/proxy", "get"),
    ("coordination.k8s.io", "leases", "get"),
}


def doc_example(index: int) -> tuple[list[str], int]:
    """The `$ promdemo doctor -n demo` example number `index` of docs/selection.md."""
    blocks = SELECTION_DOC.read_text(encoding="utf-8").split("```console\n")[1:]
    examples = []
    for block in blocks:
        lines = block.split("```", 1)[0].splitlines()
        if lines and lines[0] == "$ promdemo doctor -n demo":
            end = lines.index("$ echo $?")
            examples.append((lines[1:end], int(lines[end + 1])))
    return examples[index]


def test_doctor_names_the_label_a_prometheus_needs_as_docs_selection_shows(
    cluster: tuple[ControlPlane, Kubelet, list[str]], tmp_path: Path
) -> None:
    """The first example of docs/selection.md, line by line, from a real cluster:
    prometheus-operator's CRDs installed after PromDemos exist (theirs get a
    ServiceMonitor and a PrometheusRule then), kube-prometheus-stack's Prometheus object (no
    prometheus-operator running: doctor reads the object), a PromDemo without the
    release label. doctor says which label to add and asks no Prometheus (the audit
    log: no services/proxy request); every request it made is in the page's table."""
    cp, kubelet, _ = cluster
    apply_crds(cp)
    cp.kubectl("create", "namespace", "monitoring")
    cp.kubectl("apply", "-f", str(KPS))
    apply_promdemo(cp, "demo", "shop", {})

    def served() -> bool:
        obj = get_json(cp, "promdemo", "shop", "-n", "demo")
        return (
            condition(obj, "Available").get("status") == "True"
            and condition(obj, "MonitoringReady").get("status") == "True"
        )

    wait(served, "shop Available with its ServiceMonitor and PrometheusRule", kubelet=kubelet)
    # The PromDemo of the rotation test predates the CRDs: its monitoring follows now.
    wait(lambda: condition(get_json(cp, "promdemo", "shop", "-n", "rotate"), "MonitoringReady")
         .get("status") == "True", "MonitoringReady of rotate/shop once the CRDs exist",
         kubelet=kubelet)  # fmt: skip
    for kind in ("servicemonitor", "prometheusrule"):
        assert get_json(cp, kind, "shop", "-n", "rotate")["metadata"]["ownerReferences"]
    began = time.time()
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "COLUMNS": "200"}
    result = subprocess.run([promdemo_exe(), "doctor", "-n", "demo"], capture_output=True,
                            text=True, env=env, timeout=60, check=False)  # fmt: skip
    lines = result.stdout.splitlines()
    # The docs' example leaves out the last line, the operator's leader (install.yaml's).
    assert lines[-1].startswith("operator leader: promdemo-operator-"), result.stdout
    assert (lines[:-1], result.returncode) == doc_example(0), result.stdout + result.stderr
    time.sleep(1)  # the audit log is written as requests complete
    asked = set()
    for e in cp.audit_events():
        when = datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if not e.get("userAgent", "").startswith("promdemo-doctor/") or when.timestamp() < began:
            continue
        ref = e.get("objectRef")
        if ref is None:
            continue  # discovery (/apis/...): open to every authenticated user
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get(
            "subresource") else "")  # fmt: skip
        asked.add((ref.get("apiGroup", ""), resource, e["verb"]))
    assert asked, "no request of doctor in the audit log"
    assert asked <= DOCTOR_VERBS, asked - DOCTOR_VERBS
    assert ("", "services/proxy", "get") not in asked, "a Prometheus was asked"


def test_sigterm_stops_the_leader_with_the_api_server_up_and_frozen(
    cluster: tuple[ControlPlane, Kubelet, list[str]],
) -> None:
    """SIGTERM stops the operator with exit status 0 while its heal loop runs: once as a
    pod deletion (the kubelet's SIGTERM, API server up), once with the API server frozen
    (SIGSTOP: connections accepted, requests never answered, as a hung or partitioned
    server), where it may also exit 1 (below). Before the fix of the latter, kopf
    waited minutes for a sync handler's thread stuck in the `kubernetes` client's
    timeouts and retries. With install.yaml's
    lease (10 s renew deadline): at a stop the leader also gives the Lease up, each
    Lease call bounded by half the renew deadline, so a frozen server costs kopf's 8 s
    + 5 s waiting for the renewing thread + 5 s for the release (with the module's long
    lease, 45 s calls: past the pod's 30 s grace). Last in the module."""
    cp, kubelet, install_args = cluster
    set_operator_args(cp, kubelet, install_args)
    ns = "stop"
    apply_promdemo(cp, ns, "shop", {**HEAL_SPEC, "autoHeal": {"interval": "1s"}})
    wait(lambda: available(cp, ns, "shop"), "shop Available", kubelet=kubelet)
    pod = leader(cp)
    wait(lambda: f"{ns}/shop: heal loop started" in kubelet.logs(OPERATOR_NAMESPACE, pod),
         "the leader's heal loop", kubelet=kubelet)  # fmt: skip

    # The API server frozen: the resync timer and the heal loop send requests that are
    # never answered, then SIGTERM.
    popen = operator_process(kubelet, pod)
    assert popen is not None, f"no running operator process in pod {pod}"
    pid = apiserver_pid(cp)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(1)
        popen.send_signal(signal.SIGTERM)
        code = exit_status(popen, lambda: kubelet.logs(OPERATOR_NAMESPACE, pod))
    finally:
        os.kill(pid, signal.SIGCONT)
    log = kubelet.logs(OPERATOR_NAMESPACE, pod)
    assert f"{ns}/shop: heal loop stopped" in log, log[-4000:]
    # 0, or 1 when the renew deadline (10 s) passed while it stopped: the Lease could be
    # neither renewed nor released, and a leader that lost it exits at once with 1.
    lost = "leader election lost: the Lease was not renewed within the renew deadline"
    assert code == 0 or (code == 1 and lost in log), (code, log[-4000:])

    # The API server up: the pod deleted, the kubelet stand-in's SIGTERM (grace 30 s).
    first = popen
    wait(lambda: operator_process(kubelet, pod) not in (None, first)
         and any(p["metadata"]["name"] == pod for p in operator_pods(cp)),
         "the operator's container restarted and ready", kubelet=kubelet)  # fmt: skip
    popen = operator_process(kubelet, pod)
    assert popen is not None
    seen = len(kubelet.logs(OPERATOR_NAMESPACE, pod))
    cp.kubectl("delete", "pod", pod, "-n", OPERATOR_NAMESPACE, "--wait=false")
    code = exit_status(popen, lambda: kubelet.logs(OPERATOR_NAMESPACE, pod))
    log = kubelet.logs(OPERATOR_NAMESPACE, pod)
    assert code == 0, log[-4000:]
    assert "exiting anyway" not in log[seen:], log[seen:][-4000:]
