"""Render a PromDemo object as the operator's reconcile does, and compare what was stored.

`render_body` parses the spec once, then renders; `is_subset` says whether a stored
object holds every field the render wrote (what a server or other writers add is ignored).
"""

from __future__ import annotations

from typing import Any

from promdemo_operator.core.render import owner_reference, render_children
from promdemo_operator.core.spec import parse_spec


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


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every field of `desired` is in `actual` with the same value.

    Dicts key by key (fields the server or other writers added are ignored); lists
    item by item with the same length.
    """
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired is actual
    if isinstance(desired, int | float) and isinstance(actual, int | float):
        return float(desired) == float(actual)
    return desired == actual
