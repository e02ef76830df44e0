"""The whole chain, real: the PromDemo a user applies is scraped and evaluated by the
Prometheus 3 pod that the real prometheus-operator deploys, and healed.

Everything a user's cluster has for it is the real program here, except the node:

- a control plane (etcd, kube-apiserver, kube-controller-manager with the statefulset
  controller) from upstream, tests/support/controlplane.py;
- prometheus-operator v0.85.0 with its upstream CRDs, out of cluster as the
  selection differential test runs it (tests/support/prometheus_operator.py);
- a `Prometheus` object as kube-prometheus-stack creates it (release `prometheus`:
  ServiceMonitors and PrometheusRules labelled `release: prometheus`, in every
  namespace; its ServiceAccount and ClusterRole), with short intervals and
  EndpointSlice discovery;
- the StatefulSet prometheus-operator makes of it, whose pod the kubelet stand-in runs
  (tests/support/kubelet_images.py): the `init-config-reloader` init container and the
  `config-reloader` sidecar are the built prometheus-config-reloader, the
  `prometheus` container the built Prometheus 3, with the generated configuration and
  rule files, discovering targets through the real API server's EndpointSlices with
  the pod's ServiceAccount token (in-cluster configuration);
- promdemo's operator installed from install.yaml, as its Deployment's pod, asking
  that Prometheus through the API server's service proxy.

The user's view: `kubectl apply` of a PromDemo labelled `release: prometheus`;
`kubectl get pd` shows it selected, scraped, evaluated; an oversold pod is reset;
P95 and Success come from the recording rules. The figures (apply → first scrape,
negative → reset, ...) are printed and written to `whole-chain-figures.json` in the
test's temporary directory (PROMDEMO_CHAIN_FIGURES names another file);
docs/testing.md quotes a measured run.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promdemo_operator.rules import ALERTING_GROUP, RECORD_P95, RECORDING_GROUP
from tests.integration.test_heal_engine_apps import inventory, oversell
from tests.support.cluster import INSTALL_YAML, OPERATOR_NAMESPACE, condition, get_json, ready
from tests.support.controlplane import CONTROLLERS, ControlPlane, require_controlplane
from tests.support.kubelet_images import ImageKubelet
from tests.support.processes import wait_until
from tests.support.prometheus_operator import PrometheusOperator, require_prometheus_operator
from tests.support.upstream import require_upstream

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

#: Generous bounds for a busy 2-core machine (seconds).
TIMEOUT = 180.0
MONITORING = "monitoring"
#: kube-prometheus-stack's names for `helm install prometheus ... -n monitoring`.
PROMETHEUS = "prometheus-kube-prometheus-prometheus"
PROMETHEUS_POD = f"prometheus-{PROMETHEUS}-0"
PROXY = f"/api/v1/namespaces/{MONITORING}/services/prometheus-operated:web/proxy"
APP_NAMESPACE = "shop"
INTERVAL = "2s"

#: What kube-prometheus-stack installs for the Prometheus (templates/prometheus/):
#: ServiceAccount, ClusterRole (discovery), binding, and the Prometheus object with
#: the chart's default selectors; intervals shortened, EndpointSlice discovery.
MONITORING_STACK = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {PROMETHEUS}, namespace: {MONITORING}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {PROMETHEUS}}}
rules:
- apiGroups: [""]
  resources: [nodes, nodes/metrics, services, endpoints, pods]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- nonResourceURLs: [/metrics, /metrics/cadvisor]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {PROMETHEUS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {PROMETHEUS}}}
subjects:
- {{kind: ServiceAccount, name: {PROMETHEUS}, namespace: {MONITORING}}}
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata:
  name: {PROMETHEUS}
  namespace: {MONITORING}
  labels: {{app: kube-prometheus-stack-prometheus, release: prometheus}}
spec:
  replicas: 1
  serviceAccountName: {PROMETHEUS}
  serviceDiscoveryRole: EndpointSlice
  scrapeInterval: {INTERVAL}
  evaluationInterval: {INTERVAL}
  serviceMonitorSelector: {{matchLabels: {{release: prometheus}}}}
  serviceMonitorNamespaceSelector: {{}}
  ruleSelector: {{matchLabels: {{release: prometheus}}}}
  ruleNamespaceSelector: {{}}
  podMonitorSelector: {{matchLabels: {{release: prometheus}}}}
  podMonitorNamespaceSelector: {{}}
  probeSelector: {{matchLabels: {{release: prometheus}}}}
  probeNamespaceSelector: {{}}
"""

#: The user's PromDemo: selected by the release label, scraped every 2 s, an app that
#: oversells at once (5 in stock, no simulated failures) and heals fast.
SHOP: dict[str, Any] = {
    "apiVersion": "promdemo.dev/v1alpha1",
    "kind": "PromDemo",
    "metadata": {"name": "shop", "namespace": APP_NAMESPACE},
    "spec": {
        "replicas": 1,
        "app": {
            "initialInventory": 5,
            "simulation": {
                "dependencyMinSeconds": 0.05, "dependencyMaxSeconds": 0.2,
                "dependencyFailureRate": 0, "processingMinSeconds": 0.05,
                "processingMaxSeconds": 0.1,
            },
        },
        "autoHeal": {"source": "direct", "interval": "1s", "for": "0s", "cooldown": "0s"},
        "monitoring": {"scrapeInterval": INTERVAL, "labels": {"release": "prometheus"}},
    },
}  # fmt: skip


@dataclass
class Chain:
    cp: ControlPlane
    node: ImageKubelet
    po: PrometheusOperator
    figures: dict[str, float] = field(default_factory=dict)

    def diagnostics(self) -> str:
        cp = self.cp
        pods = cp.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        out = [f"--- pods ---\n{pods}", f"--- kubelet errors ---\n{self.node.errors[-5:]}"]
        prom = self.node.logs(MONITORING, PROMETHEUS_POD, "prometheus").splitlines()
        out.append("--- prometheus (not INFO) ---\n" + "\n".join(
            line for line in prom[-400:] if "level=INFO" not in line)[-3000:])  # fmt: skip
        try:
            targets = self.prometheus("/api/v1/targets?state=any")
            summary = [(t["scrapePool"], t["scrapeUrl"], t["health"], t["lastError"])
                       for t in targets["activeTargets"]]  # fmt: skip
            out.append(f"--- targets ---\n{summary}\ndropped: {len(targets['droppedTargets'])}")
            out.append(f"{[t['discoveredLabels'] for t in targets['droppedTargets']][:3]}")
        except (OSError, AssertionError, KeyError) as e:
            out.append(f"--- targets --- unreadable: {e}")
        for p in get_json(cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]:
            log = self.node.logs(OPERATOR_NAMESPACE, p["metadata"]["name"])[-4000:]
            out.append(f"--- promdemo operator ---\n{log}")
        out.append(f"--- prometheus-operator ---\n{self.po.log()[-2000:]}")
        return "\n".join(out)

    def wait(self, predicate: Any, what: str, timeout: float = TIMEOUT) -> float:
        """Poll `predicate`; the seconds it took; on timeout fail with what everyone said."""
        began = time.monotonic()
        try:
            wait_until(predicate, timeout=timeout, interval=0.25, what=what)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{self.diagnostics()}") from None
        return time.monotonic() - began

    def prometheus(self, path: str) -> Any:
        """An answer of the Prometheus pod's HTTP API, through the API server's proxy."""
        answer = self.cp.request("GET", f"{PROXY}{path}", timeout=10)
        assert answer.get("status") == "success", answer
        return answer["data"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    require_controlplane()
    require_prometheus_operator()
    require_upstream("prometheus", "prometheus")
    require_upstream("prometheus-operator", "prometheus-config-reloader")
    workdir = tmp_path_factory.mktemp("cp-chain")
    # The statefulset controller turns the Prometheus's StatefulSet into its pod; the
    # endpoints controller fills `prometheus-operated`'s Endpoints for the service proxy.
    controllers = (*CONTROLLERS, "statefulset-controller", "endpoints-controller")
    bin_dir = Path(sys.executable).parent
    with (
        ControlPlane(workdir=workdir, controllers=controllers) as cp,
        ImageKubelet(cp, bin_dir=bin_dir) as node,
        PrometheusOperator(cp, workdir=workdir) as po,
    ):
        yield Chain(cp, node, po)


def _pod(chain: Chain, namespace: str, name: str) -> dict[str, Any] | None:
    return chain.cp.get(f"/api/v1/namespaces/{namespace}/pods/{name}")


def _pd(chain: Chain) -> dict[str, Any]:
    return get_json(chain.cp, "promdemo", "shop", "-n", APP_NAMESPACE)


def _app_pods(chain: Chain) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/name=promdemo,app.kubernetes.io/instance=shop"
    pods = get_json(chain.cp, "pods", "-n", APP_NAMESPACE, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and ready(p)]


def _reset_token(chain: Chain) -> str:
    secret = get_json(chain.cp, "secret", "shop-reset-token", "-n", APP_NAMESPACE)
    return base64.b64decode(secret["data"]["token"]).decode()


def _app_targets(chain: Chain) -> list[dict[str, Any]]:
    targets = chain.prometheus("/api/v1/targets?state=active")["activeTargets"]
    return [t for t in targets if t["labels"].get("namespace") == APP_NAMESPACE]


def test_a_promdemo_is_scraped_evaluated_and_healed_by_the_real_stack(
    chain: Chain, tmp_path: Path
) -> None:
    cp, figures = chain.cp, chain.figures

    # The operators and the monitoring stack, as a user installs them.
    cp.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
    cp.kubectl(
        "patch", "deployment", "promdemo-operator", "-n", OPERATOR_NAMESPACE, "--type=json",
        "-p", json.dumps([{"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                           "value": f"--prometheus-interval={INTERVAL}"}]),
    )  # fmt: skip
    cp.kubectl("create", "namespace", MONITORING)
    began = time.monotonic()
    cp.kubectl("apply", "-f", "-", input=MONITORING_STACK)

    def prometheus_ready() -> bool:
        pod = _pod(chain, MONITORING, PROMETHEUS_POD)
        return pod is not None and ready(pod)

    chain.wait(prometheus_ready, "the Prometheus pod of prometheus-operator's StatefulSet Ready")
    figures["prometheus_object_to_ready_pod_seconds"] = time.monotonic() - began
    # The config-reloader watches the configuration from its first successful reload on
    # (a change before that waits for its 3-minute resync): a user's PromDemo comes later.
    chain.wait(
        lambda: "started watching config file" in chain.node.logs(
            MONITORING, PROMETHEUS_POD, "config-reloader"),
        "the config-reloader watching the configuration",
    )  # fmt: skip
    buildinfo = chain.prometheus("/api/v1/status/buildinfo")
    assert buildinfo["version"].startswith("3."), buildinfo
    chain.wait(
        lambda: any(ready(p) for p in get_json(cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]),
        "the promdemo operator's pod Ready",
    )

    # The user applies a PromDemo with the release label.
    cp.kubectl("create", "namespace", APP_NAMESPACE)
    applied = time.monotonic()
    cp.kubectl("apply", "-f", "-", input=json.dumps(SHOP))

    def scraped() -> bool:
        targets = _app_targets(chain)
        return bool(targets) and all(t["health"] == "up" for t in targets)

    chain.wait(scraped, "the shop's pod discovered and scraped by Prometheus")
    figures["apply_to_first_scrape_seconds"] = time.monotonic() - applied
    (target,) = _app_targets(chain)
    assert target["scrapePool"] == f"serviceMonitor/{APP_NAMESPACE}/shop/0", target
    assert target["discoveredLabels"]["__meta_kubernetes_endpointslice_name"].startswith("shop")

    # The rules the operator wrote were selected, loaded and evaluated by that Prometheus.
    def rules_loaded() -> bool:
        groups = chain.prometheus("/api/v1/rules")["groups"]
        mine = [g for g in groups if f"/{APP_NAMESPACE}-shop-" in g["file"]]
        return {g["name"] for g in mine} == {RECORDING_GROUP, ALERTING_GROUP} and all(
            r.get("health") == "ok" and r.get("lastEvaluation", "").startswith("2")
            for g in mine
            for r in g["rules"]
        )

    chain.wait(rules_loaded, "the shop's rule groups loaded and evaluated by Prometheus")
    figures["apply_to_rules_evaluated_seconds"] = time.monotonic() - applied

    # ... and promdemo's operator says so, having asked it through the service proxy.
    def conditions_true() -> bool:
        obj = _pd(chain)
        return all(
            condition(obj, kind).get("status") == "True"
            for kind in ("PrometheusSelected", "TargetsUp", "RulesLoaded")
        )

    chain.wait(conditions_true, "PrometheusSelected, TargetsUp and RulesLoaded True")
    figures["apply_to_conditions_true_seconds"] = time.monotonic() - applied
    obj = _pd(chain)
    assert obj["status"]["targets"]["up"] == obj["status"]["targets"]["total"] == 1, obj
    assert PROMETHEUS in condition(obj, "TargetsUp")["message"], condition(obj, "TargetsUp")
    row = cp.kubectl("get", "pd", "shop", "-n", APP_NAMESPACE).stdout.splitlines()
    columns = dict(zip(row[0].split(), row[1].split(), strict=False))
    assert (columns["SELECTED"], columns["SCRAPED"], columns["EVALUATED"]) == (
        "True", "True", "True"), row  # fmt: skip

    # Load drives the pod negative; the operator (autoHeal.source: direct) resets it.
    token = _reset_token(chain)
    (pod,) = _app_pods(chain)
    url = f"http://{pod['status']['podIP']}:8080"
    lowest = oversell(url, token=token)
    negative = time.monotonic()
    assert lowest < 0

    def healed() -> bool:
        status = _pd(chain).get("status") or {}
        return (
            status.get("healCount", 0) >= 1
            and (status.get("lastHeal") or {}).get("pod") == pod["metadata"]["name"]
        )

    chain.wait(healed, "the negative pod reset by the operator (direct)")
    figures["negative_to_reset_seconds"] = time.monotonic() - negative
    assert inventory(url) >= 0

    # The orders of the load, in the recording rules, in `kubectl get pd`.
    def lessons() -> bool:
        numbers = (_pd(chain).get("status") or {}).get("lessons") or {}
        return "p95Seconds" in numbers and "successRatio" in numbers

    chain.wait(lessons, "P95 and Success from the recording rules in the status")
    figures["load_to_lessons_seconds"] = time.monotonic() - negative
    recorded = chain.prometheus(
        f"/api/v1/query?query={RECORD_P95}%7Bnamespace%3D%22{APP_NAMESPACE}%22%7D"
    )["result"]
    assert recorded, "the P95 recording rule has no series for the shop"
    numbers = _pd(chain)["status"]["lessons"]
    assert 0 < numbers["p95Seconds"] < 10, numbers
    assert 0 < numbers["successRatio"] <= 1, numbers
    row = cp.kubectl("get", "pd", "shop", "-n", APP_NAMESPACE).stdout.splitlines()
    print("kubectl get pd:\n" + "\n".join(row))
    columns = dict(zip(row[0].split(), row[1].split(), strict=False))
    assert float(columns["P95"]) > 0, row
    assert 0 < float(columns["SUCCESS"]) <= 1, row

    figures = {k: round(v, 1) for k, v in figures.items()}
    figures_path = Path(os.environ.get("PROMDEMO_CHAIN_FIGURES") or tmp_path / "figures.json")
    figures_path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"whole chain figures ({figures_path}):", json.dumps(figures, indent=2))
