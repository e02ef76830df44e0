"""What the kopf adapters share: plain copies of kopf bodies and the API client."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from promdemo_operator.kube import Kube


def plain(value: Any) -> Any:
    """A deep plain-dict/list copy of a kopf body (or any mapping/sequence)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


_default_lock = threading.Lock()
_default: Kube | None = None


def kube_from_memo(memo: Any) -> Kube:
    """The client `promdemo operator` put in kopf's memo, else one from the default config.

    The fallback serves `kopf run -m promdemo_operator.handlers` started by hand:
    one client for the whole process, made on first use (thread-safe, since kopf
    runs sync handlers in threads).
    """
    kube = memo.get("kube") if isinstance(memo, Mapping) else getattr(memo, "kube", None)
    if kube is not None:
        return kube
    global _default
    with _default_lock:
        if _default is None:
            _default = Kube.from_default_config()
        return _default
