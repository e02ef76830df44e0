"""End to end on a kind cluster: install, reconcile, scrape, heal, delete.

Needs `kind`, `docker` (with a reachable engine) and `kubectl`; without them the
module is skipped with the reason (PROMDEMO_REQUIRE_E2E=1 makes that a failure,
for the CI job whose purpose is this suite).

Environment:
  PROMDEMO_KIND_CLUSTER   reuse this kind cluster (created, and then deleted, if missing)
  PROMDEMO_E2E_STACK      what to install in a cluster the suite creates:
                          kube-prometheus-stack (default, needs helm) | crds | none
  PROMDEMO_E2E_IMAGE      the image to build, load and deploy (default: the base's)
  PROMDEMO_E2E_SKIP_BUILD 1: the image is already built and loaded (CI does it)
  PROMDEMO_E2E_KEEP       1: keep what the suite created (debugging)
  PROMDEMO_E2E_ARTIFACTS  where logs go on failure (default: a temporary directory)

Set-up and teardown run the hack/ scripts of the Makefile (kind-up, image,
kind-load, deploy, kind-down), so the suite tests the documented path.
The tests run in file order and share one PromDemo: the last one deletes it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.kind import (
    IMAGE,
    OPERATOR_DEPLOYMENT,
    OPERATOR_NAMESPACE,
    ROOT,
    Kube,
    build_and_load,
    condition,
    create_cluster,
    delete_cluster,
    deploy,
    dump_logs,
    kind_clusters,
    operator_manifests,
    unavailable_reason,
)
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

_REASON = unavailable_reason()
if _REASON is not None:
    if os.environ.get("PROMDEMO_REQUIRE_E2E") == "1":
        pytest.fail(f"{_REASON}; PROMDEMO_REQUIRE_E2E=1 makes this a failure", pytrace=False)
    pytest.skip(_REASON, allow_module_level=True)

NAME = "shop"
REPLICAS = 2
CHILD_LABELS = {
    "app.kubernetes.io/name": "promdemo",
    "app.kubernetes.io/instance": NAME,
    "app.kubernetes.io/managed-by": "promdemo-operator",
}
KEEP = os.environ.get("PROMDEMO_E2E_KEEP") == "1"


# --------------------------------------------------------------------------- fixtures


class Env:
    """What the module's fixtures set up, for the tests to use."""

    def __init__(self, cluster: str, kube: Kube) -> None:
        self.cluster = cluster
        self.kube = kube
        self.ns = ""
        self.monitoring_crds = False

    def promdemo(self) -> dict[str, Any]:
        obj = self.kube.get("promdemo", NAME, ns=self.ns)
        assert obj is not None, f"PromDemo {self.ns}/{NAME} is gone"
        return obj


def _print_now(request: pytest.FixtureRequest, text: str) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(text, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(text, file=sys.stderr)


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """A kind cluster with the image loaded, the operator deployed and a test namespace."""
    failed_before = request.session.testsfailed
    name = os.environ.get("PROMDEMO_KIND_CLUSTER") or f"promdemo-e2e-{secrets.token_hex(3)}"
    created_cluster = name not in kind_clusters()
    kube = Kube(f"kind-{name}")
    e = Env(name, kube)
    operator_was_there = False
    try:
        if created_cluster:
            create_cluster(name)
        if os.environ.get("PROMDEMO_E2E_SKIP_BUILD") != "1":
            build_and_load(name)
        operator_was_there = kube.exists("deployment", OPERATOR_DEPLOYMENT, ns=OPERATOR_NAMESPACE)
        deploy(name)
        e.monitoring_crds = kube.has_crd("servicemonitors.monitoring.coreos.com")
        e.ns = f"promdemo-e2e-{secrets.token_hex(3)}"
        kube("create", "namespace", e.ns)
        yield e
    finally:
        if request.session.testsfailed > failed_before:
            artifacts = Path(
                os.environ.get("PROMDEMO_E2E_ARTIFACTS")
                or tempfile.mkdtemp(prefix="promdemo-e2e-logs-")
            )
            _print_now(request, "\n---- e2e failed: cluster state and logs ----")
            _print_now(request, dump_logs(name, artifacts))
        if not KEEP:
            if e.ns:
                kube(
                    "delete", "namespace", e.ns, "--ignore-not-found", "--timeout=180s", check=False
                )
            if created_cluster:
                delete_cluster(name)
            elif not operator_was_there:
                kube("delete", "-f", "-", "--ignore-not-found", "--timeout=180s",
                     input=operator_manifests(), check=False, timeout=240)  # fmt: skip


def _sample() -> dict[str, Any]:
    """manifests/samples/minimal.yaml with the loaded image, two replicas, a quick heal loop."""
    doc = yaml.safe_load((ROOT / "manifests/samples/minimal.yaml").read_text())
    assert doc["kind"] == "PromDemo"
    assert doc["metadata"]["name"] == NAME
    spec = doc.setdefault("spec", {})
    spec["image"] = IMAGE  # the image built and loaded: nothing is pulled
    spec["replicas"] = REPLICAS
    spec["autoHeal"] = {**spec.get("autoHeal", {}), "interval": "2s", "cooldown": "10s"}
    return doc


@pytest.fixture(scope="module")
def promdemo(env: Env) -> dict[str, Any]:
    """The sample applied in the test namespace (deleted by the last test or with the ns)."""
    doc = _sample()
    doc["metadata"]["namespace"] = env.ns
    env.kube.apply(doc)
    return doc


# --------------------------------------------------------------------------- tests


def test_operator_reconciles_the_sample(env: Env, promdemo: dict[str, Any]) -> None:
    def available() -> bool:
        obj = env.promdemo()
        status = obj.get("status") or {}
        cond = condition(obj, "Available")
        return (
            cond is not None
            and cond.get("status") == "True"
            and status.get("observedGeneration") == obj["metadata"]["generation"]
            and status.get("readyReplicas") == REPLICAS
        )

    wait_until(available, timeout=300, interval=2, what="PromDemo Available with 2 ready replicas")
    obj = env.promdemo()
    spec_valid = condition(obj, "SpecValid")
    assert spec_valid is None or spec_valid["status"] == "True"


def test_children_exist_with_owner_references(env: Env, promdemo: dict[str, Any]) -> None:
    owner = env.promdemo()["metadata"]["uid"]
    children = [("deployment", NAME), ("service", NAME), ("secret", f"{NAME}-reset-token")]
    if env.monitoring_crds:
        children += [("servicemonitor", NAME), ("prometheusrule", NAME)]
    for kind, name in children:
        obj = env.kube.get(kind, name, ns=env.ns)
        assert obj is not None, f"{kind}/{name} missing"
        refs = obj["metadata"].get("ownerReferences") or []
        assert any(r["uid"] == owner and r["kind"] == "PromDemo" for r in refs), (kind, refs)
        labels = obj["metadata"].get("labels") or {}
        for key, value in CHILD_LABELS.items():
            assert labels.get(key) == value, (kind, key, labels)

    service = env.kube.get("service", NAME, ns=env.ns)
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    deployment = env.kube.get("deployment", NAME, ns=env.ns)
    assert deployment["spec"]["replicas"] == REPLICAS

    monitoring = condition(env.promdemo(), "MonitoringReady")
    assert monitoring is not None
    assert monitoring["status"] == ("True" if env.monitoring_crds else "False")


def _find_prometheus(kube: Kube) -> tuple[str, str] | None:
    """(namespace, service) of a prometheus-operator managed Prometheus, if any."""
    result = kube(
        "get",
        "services",
        "-A",
        "--field-selector",
        "metadata.name=prometheus-operated",
        "-o",
        "json",
        check=False,
    )
    if result.returncode != 0:
        return None
    items = json.loads(result.stdout).get("items") or []
    if not items:
        return None
    return items[0]["metadata"]["namespace"], "prometheus-operated"


def test_prometheus_scrapes_the_pods(env: Env, promdemo: dict[str, Any]) -> None:
    found = _find_prometheus(env.kube) if env.monitoring_crds else None
    if found is None:
        pytest.skip(
            "no Prometheus in the cluster (install one: `make kind-up "
            "STACK=kube-prometheus-stack`, or PROMDEMO_E2E_STACK=kube-prometheus-stack)"
        )
    prom_ns, service = found
    with env.kube.port_forward(f"svc/{service}", 9090, ns=prom_ns) as port:
        seen: list[Any] = []

        def both_up() -> bool:
            data = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/targets", params={"state": "active"}, timeout=10
            ).json()
            ours = [
                t
                for t in data["data"]["activeTargets"]
                if t["labels"].get("namespace") == env.ns and t["labels"].get("service") == NAME
            ]
            seen[:] = [(t["labels"].get("pod"), t["health"]) for t in ours]
            return len(ours) == REPLICAS and all(t["health"] == "up" for t in ours)

        wait_until(both_up, timeout=300, interval=5, what=f"{REPLICAS} targets up (seen {seen})")
        value = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/query",
            params={"query": f'count(product_inventory{{namespace="{env.ns}"}})'},
            timeout=10,
        ).json()
        assert float(value["data"]["result"][0]["value"][1]) == REPLICAS


def _heal_count(env: Env) -> int:
    return int((env.promdemo().get("status") or {}).get("healCount") or 0)


def _ready_pod(env: Env) -> str:
    pods = env.kube(
        "get",
        "pods",
        "-n",
        env.ns,
        "-l",
        f"app.kubernetes.io/instance={NAME}",
        "-o",
        "json",
    )
    for pod in json.loads(pods.stdout)["items"]:
        ready = condition(pod, "Ready")
        if ready is not None and ready["status"] == "True":
            return pod["metadata"]["name"]
    raise AssertionError("no Ready pod")


def test_negative_inventory_is_healed(env: Env, promdemo: dict[str, Any]) -> None:
    before = _heal_count(env)
    pod = _ready_pod(env)
    with env.kube.port_forward(f"pod/{pod}", 8080, ns=env.ns) as port:
        url = f"http://127.0.0.1:{port}"
        load = subprocess.run(
            [
                sys.executable,
                "-m",
                "promdemo_operator.cli.main",
                "load",
                url,
                "--orders",
                "200",
                "--concurrency",
                "150",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert load.returncode == 0, load.stderr
        summary = json.loads(load.stdout)
        # 150 orders at once against 100 units: more than 100 succeed (the oversell).
        assert summary["statuses"].get("200", 0) > 100, summary

        wait_until(
            lambda: _heal_count(env) > before,
            timeout=180,
            interval=2,
            what="status.healCount to increase",
        )
        wait_until(
            lambda: httpx.get(f"{url}/inventory", timeout=10).json()["inventory"] >= 0,
            timeout=60,
            interval=1,
            what="the pod's inventory back at or above 0",
        )

    status = env.promdemo()["status"]
    last = status.get("lastHeal") or {}
    assert last.get("pod") == pod, status
    assert float(last.get("before")) < 0
    events = env.kube(
        "get",
        "events",
        "-n",
        env.ns,
        "--field-selector",
        f"involvedObject.name={NAME},reason=InventoryReset",
        "-o",
        "json",
    )
    items = json.loads(events.stdout)["items"]
    assert items, "no InventoryReset Event on the PromDemo"
    assert any(pod in (e.get("message") or "") for e in items), [e.get("message") for e in items]


def test_deleting_the_promdemo_removes_the_children(env: Env, promdemo: dict[str, Any]) -> None:
    children = [("deployment", NAME), ("service", NAME), ("secret", f"{NAME}-reset-token")]
    if env.monitoring_crds:
        children += [("servicemonitor", NAME), ("prometheusrule", NAME)]
    env.kube("delete", "promdemo", NAME, "-n", env.ns, "--timeout=120s", timeout=150)
    deadline = time.monotonic() + 180

    def gone() -> bool:
        return not any(env.kube.exists(kind, name, ns=env.ns) for kind, name in children)

    wait_until(
        gone, timeout=max(1.0, deadline - time.monotonic()), interval=2, what="children gone"
    )

    def pods_going() -> bool:
        pods = env.kube(
            "get", "pods", "-n", env.ns, "-l", f"app.kubernetes.io/instance={NAME}", "-o", "json"
        )
        items = json.loads(pods.stdout)["items"]
        return all(p["metadata"].get("deletionTimestamp") for p in items)

    wait_until(pods_going, timeout=120, interval=2, what="the app's pods terminating")
