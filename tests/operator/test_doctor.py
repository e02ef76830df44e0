"""`promdemo doctor` against an emulated API server, a real Prometheus and a real order service.

The story of docs/selection.md, run as a user runs it (the installed console script,
a kubeconfig with a token): a PromDemo whose children exist and whose pods are ready
(the test plays the operator with `render_body` and the Deployment controller with a
status patch), kube-prometheus-stack's Prometheus object with the chart's defaults,
and the Prometheus process behind it, reached through the API server's service proxy
(`KmockCluster.add_prometheus` makes `prometheus-operated:web` answer from it).

1. Not selected: exit 1, broken at `selected`, the exact label to add; no Prometheus
   is asked (nothing selects the PromDemo).
2. The label added (spec.monitoring.labels, then the children's labels as the
   operator applies them), and Prometheus configured as prometheus-operator
   configures it for the ServiceMonitor and the PrometheusRule (a scrape job whose
   relabelling gives `namespace`, `job`, `service`, `pod`; the rule groups of the
   PrometheusRule), then reloaded: exit 0, targets up, rules loaded, the pending
   alert shown; one targets and one rules call through the proxy.

Both outputs are the examples of docs/selection.md, compared line by line. The API
calls doctor made are exactly the RBAC verbs that page lists.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.console import promdemo_exe
from tests.support.kmock_cluster import (
    DEPLOYMENTS,
    PROMDEMOS,
    PROMETHEUSRULES,
    SERVICEMONITORS,
    ApiCall,
    KmockCluster,
)
from tests.support.processes import wait_until
from tests.support.prometheus import Prometheus, run_prometheus
from tests.support.rendering import render_body

pytestmark = pytest.mark.operator

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "selection.md"
KPS = ROOT / "tests" / "fixtures" / "prometheus" / "kube-prometheus-stack.yaml"
NS = "demo"
NAME = "shop"
#: The pod label a ServiceMonitor's relabelling gives the target (a Deployment pod's name).
POD = "shop-7c9f6d5b8-x2x7q"

#: What `promdemo doctor -n demo` asks of the API server: the verbs docs/selection.md lists.
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
    ("coordination.k8s.io", "leases", "get"),  # the operator's leader (none here)
}


def doctor(cluster: KmockCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`promdemo doctor ARGS` as a user runs it: the kubeconfig, never in-cluster."""
    env = {**os.environ, **cluster.operator_env(), "COLUMNS": "200"}
    return subprocess.run(
        [promdemo_exe(), "doctor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def doc_examples() -> list[tuple[list[str], int]]:
    """The `$ promdemo doctor -n demo` examples of docs/selection.md: (output lines, exit)."""
    text = DOCS.read_text(encoding="utf-8")
    examples = []
    for block in text.split("```console\n")[1:]:
        lines = block.split("```", 1)[0].splitlines()
        if not lines or lines[0] != "$ promdemo doctor -n demo":
            continue
        end = lines.index("$ echo $?")
        examples.append((lines[1:end], int(lines[end + 1])))
    return examples


def calls_of_doctor(cluster: KmockCluster, since: int) -> list[ApiCall]:
    """The requests doctor made (not the harness's) after the first `since` calls."""
    return [c for c in cluster.api_calls()[since:] if c.client != "harness"]


def play_operator(cluster: KmockCluster, pd: dict[str, Any], *, create: bool) -> None:
    """What the operator writes for `pd` (render_body), and the Deployment controller's status."""
    for child in render_body(pd, token="a-reset-token"):
        kind = child["kind"]
        if create:
            cluster.create(child)
        elif kind in ("ServiceMonitor", "PrometheusRule"):
            resource = SERVICEMONITORS if kind == "ServiceMonitor" else PROMETHEUSRULES
            labels = child["metadata"]["labels"]
            cluster.patch(resource, NS, NAME, {"metadata": {"labels": labels}})
    if create:
        status = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        cluster.patch(DEPLOYMENTS, NS, NAME, {"status": status}, subresource="status")


def play_prometheus_operator(prom: Prometheus, pd: dict[str, Any], app_url: str) -> None:
    """Configure Prometheus as prometheus-operator does for the selected objects, and reload.

    One scrape job per ServiceMonitor endpoint, relabelled to the Service's name as
    `job` and the pod's labels; one rules file per PrometheusRule (its spec.groups).
    """
    rule = next(c for c in render_body(pd, token="t") if c["kind"] == "PrometheusRule")
    rules_path = prom.config_path.with_name("demo-shop-rules.yaml")
    rules_path.write_text(yaml.safe_dump(rule["spec"]))
    relabel = {"namespace": NS, "service": NAME, "job": NAME, "pod": POD, "endpoint": "http"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules_path)],
        "scrape_configs": [
            {
                "job_name": f"serviceMonitor/{NS}/{NAME}/0",
                "static_configs": [{"targets": [app_url.removeprefix("http://")]}],
                "relabel_configs": [
                    {"target_label": label, "replacement": value}
                    for label, value in relabel.items()
                ],
            }
        ],
    }
    prom.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    httpx.post(f"{prom.url}/-/reload", timeout=10).raise_for_status()


def alert_pending(prom: Prometheus) -> bool:
    """NoSuccessOrders pending for the pod: scraped, rules loaded and evaluated on data."""
    return any(
        a["labels"].get("alertname") == "NoSuccessOrders"
        and a["labels"].get("pod") == POD
        and a["state"] == "pending"
        for a in prom.alerts()
    )


@pytest.fixture
def cluster(kmock_cluster_factory: Callable[..., KmockCluster]) -> KmockCluster:
    """Prometheus objects served; closed by the factory at teardown."""
    return kmock_cluster_factory(prometheus=True, namespaces=(NS, "monitoring"))


def test_doctor_names_the_label_to_add_then_sees_the_promdemo_scraped_and_evaluated(
    cluster: KmockCluster, start_app: Any, tmp_path: Path
) -> None:
    examples = doc_examples()
    _, app_url = start_app()
    with run_prometheus(tmp_path / "prom", [], wait_up=False) as prom:
        pd = cluster.create(
            {
                "apiVersion": "promdemo.dev/v1alpha1",
                "kind": "PromDemo",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {},
            }
        )
        play_operator(cluster, pd, create=True)
        cluster.add_prometheus(yaml.safe_load(KPS.read_text()), url=prom.url)

        # 1. Not selected: the exact label, and nobody asked.
        before = len(cluster.api_calls())
        first = doctor(cluster, "-n", NS)
        assert first.returncode == 1, first.stderr
        assert first.stderr == ""
        lines = first.stdout.splitlines()
        assert lines[0] == "PromDemo demo/shop: broken at selected"
        assert lines[-1].startswith("  fix: add spec.monitoring.labels: {release: prometheus}")
        assert (lines, first.returncode) == examples[0]
        first_calls = calls_of_doctor(cluster, before)
        assert not [c for c in first_calls if c.resource == "services/proxy"]

        # 2. The fix applied; prometheus-operator configures and reloads Prometheus.
        pd = cluster.patch(
            PROMDEMOS, NS, NAME, {"spec": {"monitoring": {"labels": {"release": "prometheus"}}}}
        )
        play_operator(cluster, pd, create=False)
        play_prometheus_operator(prom, pd, app_url)
        wait_until(
            lambda: alert_pending(prom), timeout=60, interval=0.5, what="target up, rules evaluated"
        )
        before = len(cluster.api_calls())
        second = doctor(cluster, "-n", NS)
        assert second.returncode == 0, second.stdout + second.stderr
        lines = second.stdout.splitlines()
        assert lines[0] == "PromDemo demo/shop: every link holds"
        assert "  targets   ok       1/1 up in Prometheus" in second.stdout
        assert (lines, second.returncode) == examples[1]
        second_calls = calls_of_doctor(cluster, before)
        proxied = [c for c in second_calls if c.resource == "services/proxy"]
        # One targets and one rules call, through the Prometheus object's governing Service.
        assert [(c.namespace, c.name) for c in proxied] == [
            ("monitoring", "prometheus-operated:web")
        ] * 2
        assert {c.rbac_key for c in first_calls + second_calls} == DOCTOR_VERBS

        # The same facts from the Prometheus given by URL, without the proxy.
        before = len(cluster.api_calls())
        direct = doctor(cluster, "-n", NS, "--prometheus-url", prom.url)
        assert direct.returncode == 0, direct.stdout
        assert f"1/1 up in Prometheus {prom.url}" in direct.stdout
        assert not [c for c in calls_of_doctor(cluster, before) if c.resource == "services/proxy"]


def test_doctor_without_the_monitoring_crds_says_so_first(
    kmock_cluster_factory: Callable[..., KmockCluster],
) -> None:
    cluster = kmock_cluster_factory(monitoring=False)
    for name in (NAME, "cart", "web"):
        pd = cluster.create(
            {
                "apiVersion": "promdemo.dev/v1alpha1",
                "kind": "PromDemo",
                "metadata": {"name": name, "namespace": NS},
                "spec": {},
            }
        )
        for child in render_body(pd, token="t"):
            if child["kind"] in ("Deployment", "Service", "Secret"):
                cluster.create(child)
        status = {"replicas": 1, "readyReplicas": 1}
        cluster.patch(DEPLOYMENTS, NS, name, {"status": status}, subresource="status")

    before = len(cluster.api_calls())
    result = doctor(cluster, "-n", NS, NAME)
    one = len(calls_of_doctor(cluster, before))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "PromDemo demo/shop: broken at crds"
    assert lines[1] == (
        "  crds      BROKEN   monitoring.coreos.com/v1 does not serve ServiceMonitor,"
        " PrometheusRule and Prometheus: prometheus-operator's CRDs are not installed"
    )
    assert "children  ok       Deployment, Service, Secret shop-reset-token" in result.stdout
    assert lines[-1].startswith("  fix: install prometheus-operator with its CRDs")

    # Every namespace, three PromDemos: the same number of requests as for one.
    before = len(cluster.api_calls())
    every = doctor(cluster, "-A")
    assert every.returncode == 1
    heads = [line for line in every.stdout.splitlines() if line.startswith("PromDemo ")]
    assert heads == [f"PromDemo demo/{n}: broken at crds" for n in ("cart", "shop", "web")]
    assert every.stdout.splitlines()[-1] == "3 PromDemos: 0 healthy, 3 broken"
    assert len(calls_of_doctor(cluster, before)) == one

    missing = doctor(cluster, "-n", NS, "nothing")
    assert missing.returncode == 1
    assert missing.stdout == "PromDemo nothing not found in namespace demo\n"
