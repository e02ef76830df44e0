"""manifests/ and crds/: every file and both kustomize overlays validate offline.

Built-in kinds are checked with `kubernetes-validate --strict` (its schemas of
Kubernetes 1.30, unknown fields refused). Custom resources it does not know:
a PromDemo is checked against our own CRD instead; ServiceMonitor (prometheus-
operator) and Application (Argo CD) are checked for the fields we rely on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import MANIFESTS, ROOT, docs_of, kustomize, validate

# Owned by other work, checked by their own tests (the samples: tests/unit/project/test_samples.py).
EXCLUDED_DIRS = {MANIFESTS / "grafana", MANIFESTS / "samples"}


def manifest_files() -> list[Path]:
    files = []
    for path in sorted([*MANIFESTS.rglob("*.yaml"), *(ROOT / "crds").glob("*.yaml")]):
        if path.name == "kustomization.yaml":
            continue
        if any(parent in EXCLUDED_DIRS for parent in path.parents):
            continue
        files.append(path)
    return files


def file_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------- files


def test_there_are_manifests_to_check():
    names = {file_id(p) for p in manifest_files()}
    for expected in (
        "crds/promdemos.promdemo.dev.yaml",
        "manifests/base/namespace.yaml",
        "manifests/base/serviceaccount.yaml",
        "manifests/base/deployment.yaml",
        "manifests/base/service.yaml",
        "manifests/base/rbac.yaml",
        "manifests/argocd/application.yaml",
        "manifests/overlays/prod/promdemo.yaml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", manifest_files(), ids=file_id)
def test_every_manifest_file_validates(path: Path):
    docs = docs_of(path.read_text())
    assert docs, f"{path} is empty"
    for doc in docs:
        validate(doc)


# --------------------------------------------------------------------------- kustomize


@pytest.fixture(scope="module")
def kind_objects() -> list[dict[str, Any]]:
    return kustomize("kind")


@pytest.fixture(scope="module")
def prod_objects() -> list[dict[str, Any]]:
    return kustomize("prod")


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("overlay", ["kind", "prod"])
def test_overlay_builds_and_validates(overlay: str, request: pytest.FixtureRequest):
    objects = request.getfixturevalue(f"{overlay}_objects")
    namespace = {"kind": "promdemo-system", "prod": "monitoring"}[overlay]
    kinds = {o["kind"] for o in objects}
    assert {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    } <= kinds
    for obj in objects:
        validate(obj)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]
    # The binding names the ServiceAccount where it really is.
    binding = find(objects, "ClusterRoleBinding")
    sa = find(objects, "ServiceAccount")
    subjects = [s for s in binding["subjects"] if s["kind"] == "ServiceAccount"]
    assert subjects == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
    ]
    assert binding["roleRef"]["name"] == find(objects, "ClusterRole")["metadata"]["name"]


@pytest.mark.parametrize("overlay", ["kind", "prod"])
def test_operator_deployment(overlay: str, request: pytest.FixtureRequest):
    objects = request.getfixturevalue(f"{overlay}_objects")
    dep = find(objects, "Deployment", "promdemo-operator")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == find(objects, "ServiceAccount")["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/promdemo/promdemo:0.1.0"
    assert [*container["command"], *container["args"]] == [
        "promdemo",
        "operator",
        "--all-namespaces",
        "--leader-elect",
    ]
    # Two replicas, one acting (the Lease's holder), never both on one node if avoidable,
    # and never both evicted at once.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in container["env"]}  # fmt: skip
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert env["POD_NAME"] == "metadata.name"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    pdb = find(objects, "PodDisruptionBudget", "promdemo-operator")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The Lease's Role is where the operator runs, bound to its ServiceAccount.
    role = find(objects, "Role")
    binding = find(objects, "RoleBinding")
    namespace = dep["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "patch"]}
    ]  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": namespace}
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081, "webhook": 8082}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert set(container["resources"]) == {"requests", "limits"}
    # The same securityContext as the app (Pod Security "restricted").
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # The Service exposes metrics and the webhook, selecting the operator's pods.
    svc = find(objects, "Service", "promdemo-operator")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {
        "metrics": 8080,
        "webhook": 8082,
    }
    expected_policy = {"kind": "Never", "prod": "IfNotPresent"}[overlay]
    assert container["imagePullPolicy"] == expected_policy


def test_kind_overlay_has_the_namespace_and_no_sample(kind_objects: list[dict]):
    ns = find(kind_objects, "Namespace")
    assert ns["metadata"]["name"] == "promdemo-system"
    assert not [o for o in kind_objects if o["kind"] == "PromDemo"]


def test_prod_overlay_deploys_as_the_flask_practice_demo_did(prod_objects: list[dict]):
    # `monitoring` belongs to kube-prometheus-stack: prod never owns the Namespace.
    assert not [o for o in prod_objects if o["kind"] == "Namespace"]
    for obj in prod_objects:
        assert obj["metadata"]["labels"]["release"] == "prometheus", obj["metadata"]["name"]
    # Selectors are left alone (a selector change would make the Deployment immutable).
    dep = find(prod_objects, "Deployment", "promdemo-operator")
    assert "release" not in dep["spec"]["selector"]["matchLabels"]
    pd = find(prod_objects, "PromDemo")
    assert pd["metadata"]["namespace"] == "monitoring"
    assert pd["spec"]["monitoring"]["labels"] == {"release": "prometheus"}
    assert find(prod_objects, "ServiceMonitor", "promdemo-operator")


def test_argocd_application_points_at_prod():
    (app,) = docs_of((MANIFESTS / "argocd" / "application.yaml").read_text())
    spec = app["spec"]
    assert spec["source"]["path"] == "manifests/overlays/prod"
    assert (MANIFESTS / "overlays" / "prod" / "kustomization.yaml").exists()
    assert spec["destination"]["namespace"] == "monitoring"
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]


def test_base_references_the_crd_directory_and_rbac():
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    assert "../../crds" in kustomization["resources"]
    assert "rbac.yaml" in kustomization["resources"]
    assert kustomization["namespace"] == "promdemo-system"


def test_prod_admits_the_webhook_only_from_alertmanagers_namespace(prod_objects: list[dict]):
    policy = find(prod_objects, "NetworkPolicy", "promdemo-operator-webhook")
    operator = find(prod_objects, "Deployment", "promdemo-operator")
    pod_labels = operator["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the policy selects the operator's pods"
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    named_ports = {p["name"] for p in container["ports"]}
    webhook_rule, open_rule = policy["spec"]["ingress"]
    assert [p["port"] for p in webhook_rule["ports"]] == ["webhook"]
    assert webhook_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # Scrapes and probes stay open; every port named exists on the container.
    assert "from" not in open_rule
    assert {p["port"] for p in open_rule["ports"]} == {"metrics", "health"}
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} <= named_ports
