"""The upstream programs built from their Go modules by hack/upstream/build.sh.

kube-apiserver, kube-controller-manager, etcd, Prometheus 3 and promtool 3,
Alertmanager, prometheus-operator and helm are built at the versions in
hack/upstream/versions.env into a cache keyed by version. A test that needs one
skips with the reason (and the command that builds it) when it is not built,
except when PROMDEMO_REQUIRE_TOOLS=1 (set by .ci/run): there it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = ROOT / "hack" / "upstream" / "versions.env"

# tool (as build.sh names it) -> its version variable in versions.env
_VERSION_KEYS = {
    "kubernetes": "KUBERNETES_VERSION",
    "etcd": "ETCD_VERSION",
    "prometheus": "PROMETHEUS_MODULE_VERSION",
    "alertmanager": "ALERTMANAGER_VERSION",
    "prometheus-operator": "PROMETHEUS_OPERATOR_VERSION",
    "helm": "HELM_VERSION",
}


def versions() -> dict[str, str]:
    """The pinned versions, read from versions.env (KEY=value lines)."""
    out: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    """Where build.sh puts its builds (the same rule as the script)."""
    if os.environ.get("PROMDEMO_UPSTREAM_CACHE"):
        return Path(os.environ["PROMDEMO_UPSTREAM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "promdemo" / "upstream"


def tool_dir(tool: str) -> Path:
    """The cache entry of `tool` at its pinned version (bin/ inside, crds/ for some)."""
    return cache_dir() / tool / versions()[_VERSION_KEYS[tool]]


def find_upstream(tool: str, binary: str) -> Path | None:
    """Path of `binary` from `tool`'s build, or None when it is not built."""
    path = tool_dir(tool) / "bin" / binary
    built = (tool_dir(tool) / ".built").exists()
    return path if built and path.is_file() and os.access(path, os.X_OK) else None


def require_upstream(tool: str, binary: str) -> Path:
    """Path of `binary`; skip (or fail in CI) with the build command when missing."""
    path = find_upstream(tool, binary)
    if path is not None:
        return path
    reason = (
        f"{binary} ({tool} {versions()[_VERSION_KEYS[tool]]}) is not built: "
        f"run hack/upstream/build.sh {tool}"
    )
    if os.environ.get("PROMDEMO_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}; PROMDEMO_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pragma: no cover
