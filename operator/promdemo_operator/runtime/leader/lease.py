"""The election's Lease in the API: a coordination.k8s.io/v1 Lease read, created, patched.

Three verbs only (get, create, patch), on one object; `manifests/base/rbac.yaml`
grants exactly those, in the operator's namespace (a Role). An update is a merge
patch of the whole spec carrying the resourceVersion that was read: the API
server refuses it with 409 Conflict when the Lease changed since (the optimistic
lock client-go gets from a PUT). Times are written as MicroTime (RFC 3339 with
microseconds), as client-go writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from promdemo_operator.core.timefmt import parse_rfc3339
from promdemo_operator.runtime.kube import Kube, KubeError
from promdemo_operator.runtime.leader.election import (
    LeaseConflict,
    LeaseRecord,
    LeaseStoreError,
    StoredLease,
)

API_VERSION = "coordination.k8s.io/v1"


def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


def micro_time(epoch: float | None) -> str | None:
    """`epoch` as a Kubernetes MicroTime: `2026-12-07T08:14:22.123456Z`."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any]) -> LeaseRecord:
    """The election's record from a Lease object (missing fields as an empty holder)."""
    spec = lease.get("spec") or {}
    try:
        seconds = int(spec.get("leaseDurationSeconds") or 0)
    except (TypeError, ValueError):
        seconds = 0
    try:
        transitions = int(spec.get("leaseTransitions") or 0)
    except (TypeError, ValueError):
        transitions = 0
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=seconds,
        acquire_time=parse_rfc3339(spec.get("acquireTime")),
        renew_time=parse_rfc3339(spec.get("renewTime")),
        transitions=transitions,
    )


def lease_object(
    namespace: str, name: str, record: LeaseRecord, version: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if version is not None:
        meta["resourceVersion"] = version
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.transitions,
    }
    for key, epoch in (("acquireTime", record.acquire_time), ("renewTime", record.renew_time)):
        if epoch is not None:
            spec[key] = micro_time(epoch)
    return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": meta, "spec": spec}


def _stored(lease: dict[str, Any]) -> StoredLease:
    version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
    return StoredLease(record_of(lease), version)


class KubeLeaseStore:
    """The Lease `namespace/name` through `kube` (whose request timeout bounds each call)."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    def get(self) -> StoredLease | None:
        try:
            return _stored(self.kube.request("GET", lease_path(self.namespace, self.name)))
        except KubeError as e:
            if e.status == 404:
                return None
            raise LeaseStoreError(f"GET lease {self.namespace}/{self.name}: {e}") from e

    def create(self, record: LeaseRecord) -> StoredLease:
        body = lease_object(self.namespace, self.name, record)
        try:
            return _stored(self.kube.request("POST", lease_path(self.namespace), body))
        except KubeError as e:
            if e.status == 409:
                raise LeaseConflict(str(e)) from e
            raise LeaseStoreError(f"create lease {self.namespace}/{self.name}: {e}") from e

    def update(self, record: LeaseRecord, version: str) -> StoredLease:
        body = lease_object(self.namespace, self.name, record, version)
        # Every spec field is set (a merge patch keeps what it does not name).
        body["spec"].setdefault("acquireTime", None)
        body["spec"].setdefault("renewTime", None)
        try:
            path = lease_path(self.namespace, self.name)
            answer = self.kube.request(
                "PATCH", path, body, content_type="application/merge-patch+json"
            )
            return _stored(answer)
        except KubeError as e:
            if e.status == 409:
                raise LeaseConflict(str(e)) from e
            raise LeaseStoreError(f"update lease {self.namespace}/{self.name}: {e}") from e
