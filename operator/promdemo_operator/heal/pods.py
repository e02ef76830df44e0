"""Pod objects (plain dicts as the API returns them) → `PodTarget`s for the engine.

Plain dict work, no Kubernetes client: the kopf adapter lists the pods, this
module decides which are ready and where each one answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .access import API_PROXY, DEFAULT_APP_PORT, pod_base_url
from .engine import PodTarget

APP_PORT_NAME = "http"


def matches_selector(pod: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    """Label equality selector (`matchLabels`); checked here too, whatever the API filtered."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Running, not being deleted, and condition Ready=True."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False
    if status.get("phase", "Running") != "Running":
        return False
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def app_port(pod: Mapping[str, Any], default: int = DEFAULT_APP_PORT) -> int:
    """The container port named `http` (the Deployment's), else `default`."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == APP_PORT_NAME and port.get("containerPort"):
                return int(port["containerPort"])
    return default


def pod_targets(
    pods: Iterable[Mapping[str, Any]],
    *,
    selector: Mapping[str, str],
    access: str,
    namespace: str,
    api_server: str | None = None,
) -> list[PodTarget]:
    """One target per pod matching `selector`, sorted by name; not-ready ones marked so."""
    targets = []
    for pod in pods:
        if not matches_selector(pod, selector):
            continue
        name = (pod.get("metadata") or {}).get("name")
        if not name:
            continue
        ip = (pod.get("status") or {}).get("podIP")
        ready = is_ready(pod)
        url = None
        if ready and (ip or access == API_PROXY):
            url = pod_base_url(
                access,
                namespace=namespace,
                pod=name,
                pod_ip=ip,
                port=app_port(pod),
                api_server=api_server,
            )
        targets.append(PodTarget(name, url, ready))
    return sorted(targets, key=lambda t: t.name)
