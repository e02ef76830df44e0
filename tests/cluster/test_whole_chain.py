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
  that Prometheus through the API server's service proxy;
- Alertmanager 0.35 (built from its module) as a Deployment's pod, the Prometheus's
  alerting target (discovered through its Service's EndpointSlices), with the
  operator's webhook as its receiver.

The user's view: `kubectl apply` of a PromDemo labelled `release: prometheus`;
`kubectl get pd` shows it selected, scraped, evaluated; an oversold pod is reset by
the operator's own checks (`autoHeal.source: direct`), then, after `kubectl patch` to
`source: alertmanager`, through InventoryNegative → Alertmanager → the webhook; P95
and Success come from the recording rules.

Where it differs from a cluster: no kube-proxy, so Alertmanager's receiver URL is
the leading operator pod's IP (a user writes the Service's name); the kubelet stand-in
refreshes mounted Secrets and ConfigMaps every 2 s, faster than a kubelet (about a
minute), so the test waits for the config-reloader to watch its files before the
PromDemo comes (a change before its first reload would wait for its 3-minute resync).

The figures (apply → first scrape, negative → reset, ...) are printed and written
to `figures.json` in the test's temporary directory (PROMDEMO_CHAIN_FIGURES names
another file); docs/testing.md quotes measured runs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from promdemo_operator.core.rules import ALERTING_GROUP, RECORD_P95, RECORDING_GROUP
from tests.support.cluster import (
    INSTALL_YAML,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    condition,
    get_json,
    ready,
)
from tests.support.console import promdemo_exe
from tests.support.controlplane import CONTROLLERS, ControlPlane, require_controlplane
from tests.support.kubelet_images import ImageKubelet
from tests.support.oversold_app import inventory, oversell
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
  alerting:
    alertmanagers:
    - {{namespace: {MONITORING}, name: alertmanager, port: web, apiVersion: v2}}
"""

#: An Alertmanager (the built one, as a Deployment's pod) whose one receiver is the
#: operator's webhook. The cluster has no kube-proxy, so the receiver's URL is the
#: leading operator pod's IP where a user writes its Service's name (docs/heal.md; the
#: standby answers the webhook port 503 and Alertmanager retries until the leader
#: answers, docs/operator.md and test_faults.py's notification through the Service).
ALERTMANAGER = """
apiVersion: v1
kind: Secret
metadata: {{name: alertmanager-config, namespace: {ns}}}
stringData:
  alertmanager.yml: |
    route:
      receiver: promdemo-operator
      group_by: [alertname, namespace, pod]
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 1m
    receivers:
    - name: promdemo-operator
      webhook_configs:
      - url: http://{operator_ip}:8082/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {token}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: alertmanager, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: alertmanager}}}}
  template:
    metadata: {{labels: {{app: alertmanager}}}}
    spec:
      containers:
      - name: alertmanager
        image: quay.io/prometheus/alertmanager:v0.35.0
        args: [--config.file=/etc/alertmanager/config/alertmanager.yml,
               --storage.path=/alertmanager, --cluster.listen-address=,
               --web.listen-address=:9093]
        ports: [{{name: web, containerPort: 9093}}]
        readinessProbe: {{httpGet: {{path: /-/ready, port: web}}, periodSeconds: 1}}
        volumeMounts:
        - {{name: config, mountPath: /etc/alertmanager/config}}
        - {{name: storage, mountPath: /alertmanager}}
      volumes:
      - {{name: config, secret: {{secretName: alertmanager-config}}}}
      - {{name: storage, emptyDir: {{}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: alertmanager, namespace: {ns}}}
spec:
  selector: {{app: alertmanager}}
  ports: [{{name: web, port: 9093, targetPort: web}}]
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
        for p in get_json(cp, "pods", "-n", APP_NAMESPACE)["items"]:
            log = self.node.logs(APP_NAMESPACE, p["metadata"]["name"])[-2000:]
            out.append(f"--- app pod {p['metadata']['name']} ---\n{log}")
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
    require_upstream("alertmanager", "alertmanager")
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


def _operator_leader(chain: Chain) -> dict[str, Any] | None:
    """The ready operator pod that holds the Lease (install.yaml runs two, one acting)."""
    lease = chain.cp.get(f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}"
                         f"/leases/{OPERATOR_NAME}")  # fmt: skip
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    pods = get_json(chain.cp, "pods", "-n", OPERATOR_NAMESPACE)["items"]
    live = [p for p in pods if ready(p) and not p["metadata"].get("deletionTimestamp")]
    leaders = [p for p in live if p["metadata"]["name"] == holder]
    return leaders[0] if leaders else None


def _alertmanager_ip(chain: Chain) -> str:
    pods = get_json(chain.cp, "pods", "-n", MONITORING, "-l", "app=alertmanager")["items"]
    (pod,) = [p for p in pods if ready(p)]
    return str(pod["status"]["podIP"])


def _table_row(table: str) -> dict[str, str]:
    """kubectl's table of one object: header -> cell, cut at the headers' columns (a
    cell may be empty)."""
    header, row = table.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], max(len(header), len(row))]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition; 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _app_targets(chain: Chain) -> list[dict[str, Any]]:
    targets = chain.prometheus("/api/v1/targets?state=active")["activeTargets"]
    return [t for t in targets if t["labels"].get("namespace") == APP_NAMESPACE]


def test_a_promdemo_is_scraped_evaluated_and_healed_by_the_real_stack(
    chain: Chain, tmp_path: Path
) -> None:
    cp, figures = chain.cp, chain.figures

    # The operators and the monitoring stack, as a user installs them.
    cp.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
    token = secrets.token_hex(16)
    cp.kubectl("create", "secret", "generic", "promdemo-webhook-token", "-n",
                OPERATOR_NAMESPACE, f"--from-literal=token={token}")  # fmt: skip
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
    chain.wait(lambda: _operator_leader(chain) is not None, "a promdemo operator pod leading")
    operator_ip = (_operator_leader(chain) or {})["status"]["podIP"]
    cp.kubectl("apply", "-f", "-", input=ALERTMANAGER.format(
        ns=MONITORING, operator_ip=operator_ip, token=token))  # fmt: skip
    chain.wait(
        lambda: any(ready(p) for p in get_json(cp, "pods", "-n", MONITORING, "-l",
                                               "app=alertmanager")["items"]),
        "Alertmanager's pod Ready",
    )  # fmt: skip

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
    row = cp.kubectl("get", "pd", "shop", "-n", APP_NAMESPACE).stdout
    columns = _table_row(row)
    assert (columns["SELECTED"], columns["SCRAPED"], columns["EVALUATED"]) == (
        "True", "True", "True"), row  # fmt: skip

    # `promdemo doctor` as a user runs it (the kubeconfig) says the same, link by link:
    # docs/selection.md's second example, but for the namespace and the 2 s interval.
    # Run again while a link is broken (bounded): on a loaded machine a pod or a target
    # may be caught between two of its states; the last output is in the failure.
    said: dict[str, subprocess.CompletedProcess[str]] = {}

    def doctor_holds() -> bool:
        said["doctor"] = subprocess.run(
            [promdemo_exe(), "doctor", "-n", APP_NAMESPACE], capture_output=True, text=True,
            env={**os.environ, "KUBECONFIG": str(cp.kubeconfig), "COLUMNS": "200"},
            timeout=60, check=False,
        )  # fmt: skip
        if said["doctor"].returncode != 0:
            print("promdemo doctor:", said["doctor"].stdout, said["doctor"].stderr)
        return said["doctor"].returncode == 0

    chain.wait(doctor_holds, "promdemo doctor: every link holds", timeout=60)
    doctor = said["doctor"]
    links = {line.split()[0]: line.split(None, 2)[1:] for line in doctor.stdout.splitlines()
             if line.startswith("  ")}  # fmt: skip
    assert doctor.stdout.splitlines()[0] == f"PromDemo {APP_NAMESPACE}/shop: every link holds"
    assert links["selected"] == ["ok", f"selected by Prometheus {MONITORING}/{PROMETHEUS} "
                                 "(ServiceMonitor and PrometheusRule)"], doctor.stdout  # fmt: skip
    assert links["targets"] == ["ok", f"1/1 up in Prometheus {MONITORING}/{PROMETHEUS}"]
    assert links["rules"][0] == "ok", doctor.stdout
    assert links["rules"][1].startswith("promdemo.alerts and promdemo.recording loaded ("), (
        doctor.stdout
    )

    # Load drives the pod negative; the operator (autoHeal.source: direct) resets it.
    token_app = _reset_token(chain)
    (pod,) = _app_pods(chain)
    url = f"http://{pod['status']['podIP']}:8080"
    lowest = oversell(url, token=token_app)
    negative = time.monotonic()
    assert lowest < 0

    def healed() -> bool:
        status = _pd(chain).get("status") or {}
        return (
            status.get("healCount", 0) >= 1
            and (status.get("lastHeal") or {}).get("pod") == pod["metadata"]["name"]
        )

    chain.wait(lambda: inventory(url) >= 0, "the negative pod reset by the operator (direct)")
    figures["negative_to_reset_seconds"] = time.monotonic() - negative
    chain.wait(healed, "the reset (direct) in the PromDemo's status")
    figures["negative_to_heal_in_status_seconds"] = time.monotonic() - negative

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
    row = cp.kubectl("get", "pd", "shop", "-n", APP_NAMESPACE).stdout
    print("kubectl get pd:\n" + row)
    columns = _table_row(row)
    assert float(columns["P95"]) > 0, row
    assert 0 < float(columns["SUCCESS"]) <= 1, row

    # The other way: autoHeal.source alertmanager. Prometheus evaluates InventoryNegative,
    # sends it to Alertmanager, which posts it to the operator's webhook; only then is
    # the pod reset (the operator's own checks do not reset in this mode).
    cp.kubectl("patch", "pd", "shop", "-n", APP_NAMESPACE, "--type=merge",
               "-p", json.dumps({"spec": {"autoHeal": {"source": "alertmanager"}}}))  # fmt: skip
    chain.wait(
        lambda: (
            (_pd(chain).get("status") or {}).get("observedGeneration")
            == _pd(chain)["metadata"]["generation"]
        ),
        "the switch to autoHeal.source alertmanager observed",
    )
    lowest = oversell(url, token=token_app)
    negative = time.monotonic()
    assert lowest < 0
    chain.wait(lambda: inventory(url) >= 0, "the negative pod reset through the webhook")
    figures["negative_to_reset_through_alertmanager_seconds"] = time.monotonic() - negative
    chain.wait(
        lambda: (_pd(chain).get("status") or {}).get("healCount", 0) >= 2,
        "the reset through Alertmanager in the PromDemo's status",
    )
    figures["negative_to_heal_in_status_through_alertmanager_seconds"] = time.monotonic() - negative
    metrics = httpx.get(f"http://{operator_ip}:8080/metrics", timeout=10).text
    heals = _sample(metrics, "promdemo_heal_latency_seconds_count",
                    namespace=APP_NAMESPACE, promdemo="shop", source="alertmanager")  # fmt: skip
    assert heals >= 1, [line for line in metrics.splitlines() if "heal_latency_seconds_c" in line]
    # Alertmanager posted to the webhook (a counter: the alert itself resolves within
    # seconds of the reset, and a resolved alert leaves Alertmanager's list).
    am_metrics = httpx.get(f"http://{_alertmanager_ip(chain)}:9093/metrics", timeout=10).text
    posted = _sample(am_metrics, "alertmanager_notifications_total", integration="webhook")
    assert posted >= 1, [line for line in am_metrics.splitlines() if "notifications_total" in line]

    figures = {k: round(v, 1) for k, v in figures.items()}
    figures_path = Path(os.environ.get("PROMDEMO_CHAIN_FIGURES") or tmp_path / "figures.json")
    figures_path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"whole chain figures ({figures_path}):", json.dumps(figures, indent=2))
