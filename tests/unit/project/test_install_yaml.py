"""install.yaml: the one-file install (`kubectl apply -f install.yaml`).

It must be what `make install.yaml` builds from manifests/overlays/release (a
stale committed file would install an old operator), pass
`kubernetes-validate --strict`, and hold the CRD, the RBAC and the operator with
the published image. The release workflow builds it with the image pinned by
digest: that path is run here with a made-up digest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api_schemas import KUBERNETES_VERSION
from tests.support.manifests import IMAGE_NAME, documents, generate, version
from tests.support.tools import require_binary

ROOT = Path(__file__).resolve().parents[3]
INSTALL = ROOT / "install.yaml"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def body(text: str) -> str:
    """install.yaml without its comment header."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def operator_image(docs: list[dict]) -> str:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container["image"]


def test_the_committed_file_is_what_make_install_yaml_builds(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    assert INSTALL.read_text() == generated.read_text(), (
        "install.yaml is stale: run `make install.yaml` and commit it"
    )


def test_it_equals_kubectl_kustomize_of_the_release_overlay() -> None:
    kubectl = require_binary("kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", "manifests/overlays/release"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert body(INSTALL.read_text()) == built


def test_it_passes_kubernetes_validate_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
         "-k", f"{KUBERNETES_VERSION}.0", str(INSTALL)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_installs_the_crd_the_rbac_and_the_operator_with_the_published_image() -> None:
    docs = documents(INSTALL)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
        "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget",
        "Service",
    ])  # fmt: skip
    (crd,) = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert crd["metadata"]["name"] == "promdemos.promdemo.dev"
    assert operator_image(docs) == f"{IMAGE_NAME}:{version()}"
    namespaced = [d for d in docs if d["kind"] in ("ServiceAccount", "Deployment", "Service")]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"promdemo-system"}
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pull = deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]
    assert pull == "IfNotPresent", "install.yaml pulls the image (the kind overlay says Never)"
    # Two replicas with leader election (tests/unit/project/test_manifests.py checks the details).
    assert deployment["spec"]["replicas"] == 2
    assert "--leader-elect" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_a_release_pins_the_operator_image_by_digest(tmp_path: Path) -> None:
    pinned = documents(generate(tmp_path, f"{IMAGE_NAME}@{DIGEST}"))
    assert operator_image(pinned) == f"{IMAGE_NAME}@{DIGEST}"
    # Everything else is the committed file's.
    committed = documents(INSTALL)
    assert [d for d in pinned if d["kind"] != "Deployment"] == [
        d for d in committed if d["kind"] != "Deployment"
    ]


@pytest.mark.parametrize("image", ["registry.local:5000/promdemo:dev", "promdemo"])
def test_any_image_reference_is_set_as_given(tmp_path: Path, image: str) -> None:
    docs = documents(generate(tmp_path, image))
    assert operator_image(docs) == (image if ":dev" in image else f"{image}:latest")
