"""The Helm chart against the real control plane, as a user installs it.

`helm install` (the pinned Helm 4) from the chart directory and from the packaged
chart (`helm package`) brings the operator up as its Deployment's pod; a PromDemo
goes negative under load and is healed; `helm upgrade` rolls the operator and it
heals again; `kubectl promdemo doctor -n demo` reads the cluster; `helm uninstall`
leaves no PromDemo stuck on the operator's finalizer (the sample is deleted by the
chart's pre-delete hook Pod, while the operator still runs). With prometheus-
operator's CRDs installed, the chart's optional ServiceMonitor and dashboard
ConfigMap pass the API server and carry `monitoring.labels`.

These tests run a control plane of their own (module scope): the session's runs
the operator of install.yaml for every namespace (tests/cluster/test_operator.py),
and two operators serving one PromDemo would both heal it. Their kubelet stand-in
also ends a `restartPolicy: Never` pod as Succeeded or Failed (`CompletingKubelet`),
which Helm waits for on a hook Pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import condition, get_json, ready, wait
from tests.support.controlplane import ControlPlane, require_controlplane
from tests.support.helm import CHART, Helm
from tests.support.kubelet import Kubelet, Pod
from tests.support.oversold_app import inventory, oversell
from tests.support.promdemos import HEAL_SPEC, promdemo, reset_token
from tests.support.upstream import require_upstream, tool_dir

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NAMESPACE = "promdemo-system"
RELEASE = "promdemo"
OPERATOR = "promdemo-operator"


class CompletingKubelet(Kubelet):
    """The kubelet stand-in, where a pod with `restartPolicy: Never` runs once and ends
    `Succeeded` (every container exited 0) or `Failed`, as a kubelet reports it."""

    def _tend(self, pod: Pod, obj: dict[str, Any]) -> None:
        codes = [c.popen.poll() if c.popen is not None else None for c in pod.containers]
        if (obj.get("spec") or {}).get("restartPolicy") != "Never" or None in codes:
            super()._tend(pod, obj)
            return
        phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"
        if (obj.get("status") or {}).get("phase") == phase:
            return
        statuses = [
            {"name": c.name, "image": c.spec.get("image", ""), "imageID": "", "ready": False,
             "restartCount": 0, "state": {"terminated": {
                 "exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}
            for c, code in zip(pod.containers, codes, strict=True)
        ]  # fmt: skip
        self._api_ignore_missing(
            "PATCH", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
            {"status": {"phase": phase, "containerStatuses": statuses}},
            content_type="application/merge-patch+json",
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, Kubelet]]:
    require_controlplane()
    with ControlPlane() as cp, CompletingKubelet(cp) as node:
        yield cp, node


@pytest.fixture
def helm(cluster: tuple[ControlPlane, Kubelet], tmp_path: Path) -> Helm:
    cp, _ = cluster
    return Helm.require(tmp_path / "helm", kubeconfig=cp.kubeconfig)


# --------------------------------------------------------------------------- helpers


def available(cp: ControlPlane, namespace: str, name: str) -> bool:
    obj = get_json(cp, "promdemo", name, "-n", namespace)
    return condition(obj, "Available").get("status") == "True"


def app_pod(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    selector = f"app.kubernetes.io/name=promdemo,app.kubernetes.io/instance={name}"
    pods = get_json(cp, "pods", "-n", namespace, "-l", selector)["items"]
    (pod,) = [p for p in pods if not p["metadata"].get("deletionTimestamp") and ready(p)]
    return pod


def heal_count(cp: ControlPlane, namespace: str, name: str) -> int:
    status = get_json(cp, "promdemo", name, "-n", namespace).get("status") or {}
    return int(status.get("healCount", 0))


def drive_negative_and_wait_healed(
    cp: ControlPlane, kubelet: Kubelet, namespace: str, name: str
) -> None:
    """Oversell the PromDemo's pod below zero; the operator must reset it."""
    before = heal_count(cp, namespace, name)
    pod = app_pod(cp, namespace, name)
    url = f"http://{pod['status']['podIP']}:8080"
    oversell(url, token=reset_token(cp, namespace, name))
    # oversell's later rounds may race a first heal: wait for the last one too.
    wait(
        lambda: heal_count(cp, namespace, name) > before and inventory(url) >= 0,
        f"a heal of {namespace}/{name} (healCount above {before}, inventory not negative)",
        kubelet=kubelet,
    )


def operator_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    pods = get_json(cp, "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={OPERATOR}")
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def operator_ready(cp: ControlPlane) -> None:
    """helm --wait returned: the operator's Deployment is rolled out, each pod Ready."""
    cp.kubectl("rollout", "status", f"deployment/{OPERATOR}", "-n", NAMESPACE, "--timeout=60s")
    replicas = get_json(cp, "deployment", OPERATOR, "-n", NAMESPACE)["spec"]["replicas"]
    wait(
        lambda: len(pods := operator_pods(cp)) == replicas and all(map(ready, pods)),
        f"{replicas} ready operator pod(s), the old ones gone",
    )


def no_promdemo_left(cp: ControlPlane) -> bool:
    return get_json(cp, "promdemos", "-A")["items"] == []


def plugin(cp: ControlPlane, *argv: str) -> subprocess.CompletedProcess[str]:
    """`kubectl promdemo ARGV` as a user types it, the package's plugin on PATH."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["kubectl", "promdemo", *argv, "--kubeconfig", str(cp.kubeconfig)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --------------------------------------------------------------------------- the tests


def test_install_from_the_directory_heals_upgrades_and_uninstalls(
    cluster: tuple[ControlPlane, Kubelet], helm: Helm
) -> None:
    cp, kubelet = cluster
    out = helm.ok(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", "180s", timeout=240,
    )  # fmt: skip
    assert "STATUS: deployed" in out
    assert "kubectl promdemo doctor -n demo" in out  # NOTES, as printed to the user
    operator_ready(cp)
    cp.kubectl("get", "crd", "promdemos.promdemo.dev")

    cp.kubectl("create", "namespace", "demo")
    cp.kubectl("apply", "-f", "-", input=promdemo("shop", "demo", HEAL_SPEC))
    wait(lambda: available(cp, "demo", "shop"), "shop Available", kubelet=kubelet)
    drive_negative_and_wait_healed(cp, kubelet, "demo", "shop")

    # The kubectl plugin, as the chart's NOTES tell: it reads this cluster, -n demo.
    doctor = plugin(cp, "doctor", "-n", "demo")
    assert doctor.returncode in (0, 1), doctor.stderr  # 1: no prometheus-operator here
    lines = doctor.stdout.splitlines()
    assert lines[0].startswith("PromDemo demo/shop"), doctor.stdout
    links = {line.split()[0]: line.split()[1] for line in lines[1:] if line.startswith("  ")}
    assert links.get("children") == "ok", doctor.stdout
    assert links.get("pods") == "ok", doctor.stdout

    # helm upgrade with another value: a new operator pod (Recreate), which heals again.
    old = {p["metadata"]["uid"] for p in operator_pods(cp)}
    out = helm.ok(
        "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
        "--set-json", 'extraArgs=["--workers","8"]', "--wait", "--timeout", "180s", timeout=240,
    )  # fmt: skip
    assert "REVISION: 2" in out
    operator_ready(cp)
    for pod in operator_pods(cp):
        assert pod["metadata"]["uid"] not in old
        assert pod["spec"]["containers"][0]["args"][-2:] == ["--workers", "8"]
    drive_negative_and_wait_healed(cp, kubelet, "demo", "shop")

    # Uninstall as docs/helm.md says: the PromDemos first, while the operator runs.
    cp.kubectl("delete", "promdemos", "--all", "-A", "--wait=true", timeout=120)
    assert no_promdemo_left(cp)
    helm.ok("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s")
    wait(lambda: operator_pods(cp) == [], "the operator's pods gone", kubelet=kubelet)
    for what in (f"deployment/{OPERATOR}", f"clusterrole/{OPERATOR}", f"serviceaccount/{OPERATOR}"):
        gone = cp.kubectl("get", what, "-n", NAMESPACE, "--ignore-not-found", "-o", "name")
        assert gone.stdout.strip() == "", what
    # Helm never deletes crds/: the API stays, empty.
    cp.kubectl("get", "crd", "promdemos.promdemo.dev")
    cp.kubectl("delete", "namespace", "demo", "--wait=true", timeout=120)


def monitoring_crds() -> list[Path]:
    """prometheus-operator's CRDs of the pinned build (ServiceMonitor, PrometheusRule, ...)."""
    require_upstream("prometheus-operator", "prometheus-operator")
    crds = tool_dir("prometheus-operator") / "crds"
    return [crds / f"monitoring.coreos.com_{plural}.yaml"
            for plural in ("servicemonitors", "prometheusrules", "prometheuses")]  # fmt: skip


def test_install_from_the_package_heals_its_sample_and_uninstall_deletes_it(
    cluster: tuple[ControlPlane, Kubelet], helm: Helm, tmp_path: Path
) -> None:
    cp, kubelet = cluster
    # prometheus-operator's CRDs, so that the optional ServiceMonitor is checked by the
    # API server against the real schema.
    for crd in monitoring_crds():
        cp.kubectl("apply", "--server-side", "-f", str(crd))
    out = helm.ok("package", str(CHART), "--destination", str(tmp_path))
    package = next(tmp_path.glob("promdemo-*.tgz"))
    assert str(package) in out
    helm.ok(
        "install", RELEASE, str(package), "--namespace", NAMESPACE, "--create-namespace",
        "--set", "sample.enabled=true", "--set-json", f"sample.spec={json.dumps(HEAL_SPEC)}",
        "--set", "serviceMonitor.enabled=true,grafanaDashboard.enabled=true",
        "--set-json", 'monitoring.labels={"release":"prometheus"}',
        "--wait", "--timeout", "180s", timeout=240,
    )  # fmt: skip
    operator_ready(cp)
    wait(lambda: available(cp, NAMESPACE, "shop"), "the sample Available", kubelet=kubelet)
    sample = get_json(cp, "promdemo", "shop", "-n", NAMESPACE)
    assert sample["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert sample["spec"]["monitoring"]["labels"] == {"release": "prometheus"}
    # The chart's ServiceMonitor for the operator, and the one the operator made for the
    # sample, both carry the label kube-prometheus-stack's Prometheus selects.
    for name in (OPERATOR, "shop"):
        wait(
            lambda name=name: cp.kubectl("get", "servicemonitor", name, "-n", NAMESPACE,
                                         check=False).returncode == 0,
            f"ServiceMonitor {name}", kubelet=kubelet,
        )  # fmt: skip
        monitor = get_json(cp, "servicemonitor", name, "-n", NAMESPACE)
        assert monitor["metadata"]["labels"]["release"] == "prometheus", monitor["metadata"]
    dashboard = get_json(cp, "configmap", "promdemo-dashboard", "-n", NAMESPACE)
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["promdemo.json"])["uid"] == "promdemo-lessons"
    drive_negative_and_wait_healed(cp, kubelet, NAMESPACE, "shop")

    # No PromDemo deleted by hand: the pre-delete hook Pod deletes the sample and waits
    # for the operator to release its finalizer; then Helm deletes the operator.
    result = helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait",
                      "--timeout", "180s", timeout=240)  # fmt: skip
    hook_log = kubelet.logs(NAMESPACE, f"{OPERATOR}-sample-cleanup")
    assert result.returncode == 0, f"{result.stderr}\n--- hook pod ---\n{hook_log}"
    assert "PromDemo promdemo-system/shop: deleted" in hook_log, hook_log
    assert no_promdemo_left(cp)
    wait(lambda: operator_pods(cp) == [], "the operator's pods gone", kubelet=kubelet)
    # The hook's Pod, ServiceAccount and RBAC are deleted once it succeeded.
    left = cp.kubectl("get", "pods,serviceaccounts,roles,rolebindings", "-n", NAMESPACE,
                      "-o", "name").stdout.split()  # fmt: skip
    assert not [name for name in left if "sample-cleanup" in name], left
    # And the chart's own monitoring objects went with the release.
    left = cp.kubectl("get", "servicemonitors,configmaps", "-n", NAMESPACE, "-o", "name")
    assert not [n for n in left.stdout.split() if OPERATOR in n or "dashboard" in n], left
