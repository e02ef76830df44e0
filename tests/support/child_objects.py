"""Children written by hand where a test needs fewer fields than a render gives."""

from __future__ import annotations

from typing import Any


def service_monitor(labels: dict[str, str], **extra_meta: Any) -> dict[str, Any]:
    """ServiceMonitor `demo/shop` carrying `labels` (and any other metadata given)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "shop", "namespace": "demo", "labels": labels, **extra_meta},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "endpoints": [{"port": "http"}],
        },
    }
