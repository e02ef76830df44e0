"""The project's manifests as the tests build and check them, offline.

`kustomize` builds an overlay of manifests/ with kubectl, `generate` runs
hack/install-yaml.sh (what `make install.yaml` and the release run), and
`validate` checks one object: built-in kinds with `kubernetes-validate --strict`
(its Kubernetes 1.30 schemas, unknown fields refused), a PromDemo against our own
CRD and `parse_spec`, a ServiceMonitor and an Argo CD Application for the fields
the project relies on.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from promdemo_operator.core import spec as spec_mod
from promdemo_operator.core.duration import parse_duration
from tests.support.crd import schema_errors
from tests.support.tools import require_binary

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
K8S_VERSION = "1.30"
IMAGE_NAME = "ghcr.io/promdemo/promdemo"
NOT_KUBERNETES_VALIDATE = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("argoproj.io/v1alpha1", "Application"),
}


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def generate(tmp_path: Path, *image: str) -> Path:
    """hack/install-yaml.sh [IMAGE] into a file of tmp_path."""
    require_binary("kubectl")
    out = tmp_path / "install.yaml"
    result = subprocess.run(
        ["bash", "hack/install-yaml.sh", *(image or (f"{IMAGE_NAME}:{version()}",)), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate(doc: dict[str, Any]) -> str:
    """Validate one object; returns how it was checked."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key == ("promdemo.dev/v1alpha1", "PromDemo"):
        assert schema_errors(doc) == []
        spec_mod.parse_spec(doc.get("spec"))
        return "crd"
    if key == ("monitoring.coreos.com/v1", "ServiceMonitor"):
        spec = doc["spec"]
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert endpoint["port"]
            parse_duration(endpoint.get("interval", "30s"))
        return "fields"
    if key == ("argoproj.io/v1alpha1", "Application"):
        spec = doc["spec"]
        assert {"project", "source", "destination"} <= spec.keys()
        return "fields"
    assert key not in NOT_KUBERNETES_VALIDATE
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    return "kubernetes-validate"


def kustomize(overlay: str) -> list[dict[str, Any]]:
    kubectl = require_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return docs_of(result.stdout)
