"""A PromDemo on the real control plane, as the cluster tier's tests make and read it: its
manifest, a fresh namespace, readiness, its app pods, Events and reset token."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.cluster import condition, get_json
from tests.support.controlplane import ControlPlane

#: An app that oversells at once (as the integration tier's heal tests) and heals fast.
HEAL_SPEC: dict[str, Any] = {
    "replicas": 1,
    "app": {
        "initialInventory": 5,
        "simulation": {
            "dependencyMinSeconds": 0.5, "dependencyMaxSeconds": 0.8,
            "dependencyFailureRate": 0, "processingMinSeconds": 0.05,
            "processingMaxSeconds": 0.1,
        },
    },
    "autoHeal": {"interval": "1s", "for": "0s", "cooldown": "0s"},
}  # fmt: skip


def promdemo(name: str, namespace: str, spec: dict[str, Any] | None = None) -> str:
    return json.dumps({
        "apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec or {},
    })  # fmt: skip


def new_namespace(cp: ControlPlane, name: str) -> str:
    cp.kubectl("create", "namespace", name)
    return name


def pd(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cp, "promdemo", name, "-n", namespace)


def available(cp: ControlPlane, namespace: str, name: str, replicas: int) -> bool:
    obj = pd(cp, namespace, name)
    return (
        condition(obj, "Available").get("status") == "True"
        and (obj.get("status") or {}).get("readyReplicas") == replicas
    )


def app_pods(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/name=promdemo,app.kubernetes.io/instance={name}"
    pods = get_json(cp, "pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def gone(cp: ControlPlane, *args: str) -> bool:
    done = cp.kubectl("get", *args, "-o", "name", "--ignore-not-found", check=False)
    return done.returncode == 0 and not done.stdout.strip()


def events(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    items = get_json(cp, "events", "-n", namespace)["items"]
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


def reset_token(cp: ControlPlane, namespace: str, name: str) -> str:
    secret = get_json(cp, "secret", f"{name}-reset-token", "-n", namespace)
    return base64.b64decode(secret["data"]["token"]).decode()
