"""Render a PromDemo object as the operator's reconcile does: parse its spec once, then render."""

from __future__ import annotations

from typing import Any

from promdemo_operator.render import owner_reference, render_children
from promdemo_operator.spec import parse_spec


def render_body(pd: dict[str, Any], *, token: str) -> list[dict[str, Any]]:
    """The children of PromDemo object `pd` (metadata name/namespace/uid and spec)."""
    meta = pd.get("metadata") or {}
    return render_children(
        meta.get("name"),
        meta.get("namespace"),
        parse_spec(pd.get("spec")),
        token=token,
        owner=owner_reference(pd),
    )
