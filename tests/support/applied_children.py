"""What a reconcile did to its children, as the core's reconcile decisions read it.

`Child` has the shape of `runtime.kube.ApplyResult` (kind, name, action, object);
`held_by(name)` is an object controlled by a PromDemo of that name (a deleted
namesake's child, when the PromDemo asking has the same name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Child:
    kind: str
    name: str
    action: str  # created | patched | unchanged | not_owned
    object: dict[str, Any] = field(default_factory=dict)


def held_by(promdemo: str) -> dict[str, Any]:
    """An object whose controller is the PromDemo `promdemo`."""
    ref = {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "name": promdemo,
        "uid": "u-old",
        "controller": True,
    }
    return {"metadata": {"ownerReferences": [ref]}}
