"""Plain copies of API objects: kopf bodies and other read-only mappings become dicts
and lists that can be stored, compared and written back (core and adapters share it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    """A deep plain-dict/list copy of a kopf body (or any mapping/sequence)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
