"""RFC 7386 JSON merge patch, applied as kube-apiserver applies it: the emulated API
server and the unit tests that check what a patch would make of an object share it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`patch` applied to `target` (null deletes a key; lists and scalars replace)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
