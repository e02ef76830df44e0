"""Pod objects (plain dicts as the API returns them) → `PodTarget`s for the engine.

Plain dict work, no Kubernetes client: the kopf adapter watches the pods and keeps
one small `PodRecord` per pod (name, IP, ready, app port, UID: what a heal check needs,
instead of the whole pod); this module makes the records and decides which pods
are ready and where each one answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from promdemo_operator.heal.access import API_PROXY, DEFAULT_APP_PORT, pod_base_url
from promdemo_operator.heal.engine import PodTarget

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


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What the heal loop keeps of one watched pod."""

    name: str
    ip: str | None
    ready: bool
    port: int
    # metadata.uid: which pod the heal engine means at `ip` (an IP outlives its pod).
    uid: str = ""


def pod_record(pod: Mapping[str, Any]) -> PodRecord:
    """The record of one pod object."""
    return PodRecord(
        name=str((pod.get("metadata") or {}).get("name") or ""),
        ip=(pod.get("status") or {}).get("podIP") or None,
        ready=is_ready(pod),
        port=app_port(pod),
        uid=str((pod.get("metadata") or {}).get("uid") or ""),
    )


def scrape_instance(record: PodRecord) -> str | None:
    """``host:port`` Prometheus scrapes the pod at (its IP, its app port): an alert's
    `instance` when a ServiceMonitor found the pod through its Service's endpoints."""
    if not record.ip:
        return None
    host = f"[{record.ip}]" if ":" in record.ip else record.ip
    return f"{host}:{record.port}"


def _is_ip_instance(instance: str) -> bool:
    """Is `instance` an ``ip:port`` (``[v6]:port``), rather than a name?"""
    host = instance.rsplit(":", 1)[0] if ":" in instance else instance
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def alert_names_pod(record: PodRecord, *, pod: str | None, instance: str | None) -> bool:
    """Does an alert with these `pod` / `instance` labels point at this very pod?

    By what the pod is, whatever way the operator reaches it (pod IP or the API
    server's proxy): its name, else the address it was scraped at. When the alert
    carries both and its `instance` is an IP address, that address must be this
    pod's too: an alert about an earlier pod of the same name (deleted and made
    again, as a StatefulSet's are) names the old address and does not reset the new
    pod. An `instance` that is a host name (scraped some other way) is left aside.
    """
    own = scrape_instance(record)
    if pod:
        if record.name != pod:
            return False
        if instance and own and _is_ip_instance(instance):
            return instance == own
        return True
    return bool(instance) and instance == own


def targets_from_records(
    records: Iterable[PodRecord],
    *,
    access: str,
    namespace: str,
    api_server: str | None = None,
) -> list[PodTarget]:
    """One target per record, sorted by name; not-ready ones (or without an address) marked."""
    targets = []
    for rec in records:
        if not rec.name:
            continue
        url = None
        if rec.ready and (rec.ip or access == API_PROXY):
            url = pod_base_url(
                access,
                namespace=namespace,
                pod=rec.name,
                pod_ip=rec.ip,
                port=rec.port,
                api_server=api_server,
            )
        targets.append(PodTarget(rec.name, url, rec.ready, uid=rec.uid))
    return sorted(targets, key=lambda t: t.name)


def pod_targets(
    pods: Iterable[Mapping[str, Any]],
    *,
    selector: Mapping[str, str],
    access: str,
    namespace: str,
    api_server: str | None = None,
) -> list[PodTarget]:
    """One target per pod matching `selector`, sorted by name; not-ready ones marked so."""
    records = [pod_record(p) for p in pods if matches_selector(p, selector)]
    return targets_from_records(records, access=access, namespace=namespace, api_server=api_server)
