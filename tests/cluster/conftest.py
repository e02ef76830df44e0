"""Cluster tier: a real control plane (etcd, kube-apiserver, kube-controller-manager
built from upstream) in a network namespace of its own, a kubelet stand-in that runs
pods as local processes, and the real operator against them.

One control plane per test session (started once: about 4 s; see docs/testing.md);
each test works in namespaces of its own. The tier skips with the reason where the
binaries are not built or the user is not root (a failure under
PROMDEMO_REQUIRE_TOOLS=1, as in CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import INSTALL_YAML, OPERATOR_NAMESPACE, get_json, ready, wait
from tests.support.controlplane import ControlPlane, require_controlplane
from tests.support.kubelet import Kubelet


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager, stopped (and removed) at the end."""
    require_controlplane()
    with ControlPlane() as cp:
        yield cp


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[Kubelet]:
    """The node: binds and runs every pod of the session's control plane."""
    with Kubelet(control_plane) as node:
        yield node


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, kubelet: Kubelet) -> ControlPlane:
    """install.yaml applied as a user would; the operator runs as its Deployment's pod.

    The pod's ServiceAccount token (TokenRequest, through the projected volume the
    ServiceAccount admission plugin adds) is what it authenticates with, so every
    request it makes is authorized by the real RBAC authorizer against
    manifests/base/rbac.yaml.
    """
    control_plane.kubectl("apply", "--server-side", "-f", str(INSTALL_YAML))
    wait(
        lambda: any(ready(p) for p in get_json(control_plane, "pods", "-n", OPERATOR_NAMESPACE)
                    ["items"]),
        "the operator's pod to be ready",
        kubelet=kubelet,
    )  # fmt: skip
    return control_plane
