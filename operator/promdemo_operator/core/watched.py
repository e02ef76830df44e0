"""What the operator keeps in memory from its watches of the children (pure).

The operator watches the objects it creates (label `app.kubernetes.io/name=promdemo`,
filtered by the API server) and keeps one `ChildRecord` per object: who controls
it and the object itself as compressed JSON, unpacked only when a reconcile needs it.
A reconcile then plans against memory instead of reading each child (a converged
PromDemo costs no request), the heal loop reads the reset token from the Secret's
record, and a change to a child says which PromDemo to reconcile.

Compressed JSON rather than the dict: a child's dict takes about ten times the
memory of its JSON, which zlib shrinks about four times more, and it is needed only
at a reconcile, which is rare (unpacking the five children of a PromDemo takes
well under a millisecond). `managedFields` (the API server's bookkeeping, often
the largest part of an object) are dropped.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promdemo_operator.core.apply_plan import secret_value
from promdemo_operator.core.names import KIND

#: The children's kinds by the plural they are watched under.
CHILD_KINDS = {
    "secrets": "Secret",
    "deployments": "Deployment",
    "services": "Service",
    "servicemonitors": "ServiceMonitor",
    "prometheusrules": "PrometheusRule",
}


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """One watched child: its identity, its controlling PromDemo, the object as JSON."""

    kind: str
    namespace: str
    name: str
    resource_version: str
    owner: str | None  # name of the PromDemo with the controller owner reference
    owner_uid: str | None
    packed: bytes  # zlib-compressed compact JSON of the object

    def object(self) -> dict[str, Any]:
        """The object as the watch last delivered it (a fresh dict each call)."""
        return json.loads(zlib.decompress(self.packed))

    def secret_value(self, key: str) -> str | None:
        """For a Secret: the decoded value of `key`; None when absent."""
        return secret_value(self.object(), key)


def controller_promdemo(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the PromDemo that controls `obj`, from its owner references."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if not isinstance(ref, Mapping) or ref.get("controller") is not True:
            continue
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith("promdemo.dev/"):
            return str(ref.get("name")), str(ref.get("uid"))
    return None


def _trimmed(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def child_record(kind: str, obj: Mapping[str, Any]) -> ChildRecord:
    """The record of one watched child object."""
    meta = obj.get("metadata") or {}
    owner = controller_promdemo(obj)
    return ChildRecord(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        owner=owner[0] if owner else None,
        owner_uid=owner[1] if owner else None,
        packed=zlib.compress(json.dumps(_trimmed(obj), separators=(",", ":")).encode(), 1),
    )
