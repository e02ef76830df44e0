"""The operator's apply (`kube.Kube.apply`) against the real API server, where it
differs from any emulator: the server drops a field it does not know (with a
warning) instead of refusing it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config

from promdemo_operator.runtime.kube import Kube
from tests.support.cluster import render_children, wait
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


def deployment_patches(cp: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return [
        e for e in cp.audit_events()
        if e.get("verb") == "patch"
        and (e.get("objectRef") or {}).get("resource") == "deployments"
        and (e.get("objectRef") or {}).get("namespace") == namespace
    ]  # fmt: skip


def test_an_unknown_field_in_a_child_is_not_patched_at_every_reconcile(
    control_plane: ControlPlane,
) -> None:
    cp = control_plane
    ns = "unknown-field"
    cp.kubectl("create", "namespace", ns)
    kube = Kube(k8s_config.new_client_from_config(config_file=str(cp.kubeconfig)))
    docs = list(yaml.safe_load_all(render_children("shop", ns)))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    # A typo in a rendered child: a field the Deployment schema does not have.
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"

    created = kube.apply(deployment)
    assert created.action == "created"
    container = created.object["spec"]["template"]["spec"]["containers"][0]
    assert "imagePullPolice" not in container, "the real server drops an unknown field"

    # Reconciles after it, planned against the object as the server has it (as a watch
    # delivers it): nothing to send, again and again.
    actions = []
    for _ in range(3):
        current = kube.get("Deployment", ns, "shop")
        actions.append(kube.apply(deployment, actual=current).action)
    assert actions == ["unchanged"] * 3
    time.sleep(1.0)  # the audit log is written as requests complete
    wait(lambda: any(e.get("verb") == "create" and (e.get("objectRef") or {}).get("namespace")
                     == ns for e in cp.audit_events()), "the create in the audit log")  # fmt: skip
    assert deployment_patches(cp, ns) == []
