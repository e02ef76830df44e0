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
