"""Alertmanager webhook payloads → the pods an `InventoryNegative` alert points at.

Pure parsing, no HTTP server (that is `handlers/webhook.py`). Alertmanager's
webhook payload (version "4") is a group notification::

    {"version": "4", "status": "firing", "receiver": "...", "groupKey": "...",
     "alerts": [{"status": "firing" | "resolved", "labels": {...},
                 "annotations": {...}, "startsAt": "RFC3339", "endsAt": "...",
                 "fingerprint": "..."}], ...}

Each alert in it is judged on its own `status` (a group can mix firing and
resolved alerts). The `InventoryNegative` rule (`operator/promdemo_operator/rules.py`) keeps
every label of the `product_inventory` series: `instance` (``host:port`` of
the scraped pod) always; `namespace` and `pod` under prometheus-operator; a
`promdemo` label when the rule's extra labels add it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALERT_NAME = "InventoryNegative"


class PayloadError(ValueError):
    """Not an Alertmanager webhook payload."""


@dataclass(frozen=True)
class AlertRef:
    """One alert of the payload, reduced to what identifies its pod."""

    status: str  # firing | resolved
    alertname: str
    namespace: str | None
    promdemo: str | None
    pod: str | None
    instance: str | None
    starts_at: float | None  # epoch seconds (Prometheus' activeAt: first below evaluation)
    fingerprint: str | None

    @property
    def firing(self) -> bool:
        return self.status == "firing"


def parse_time(text: Any) -> float | None:
    """RFC 3339 (Alertmanager's nanosecond precision too) → epoch seconds; None if unset."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    s = text.strip().replace("Z", "+00:00")
    # Python's fromisoformat takes at most 6 fractional digits.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


def parse_payload(payload: Any) -> list[AlertRef]:
    """Every alert of a webhook payload; raises `PayloadError` for anything else."""
    if not isinstance(payload, Mapping):
        raise PayloadError("payload is not a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("payload has no 'alerts' list")
    refs = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            raise PayloadError("an alert is not a JSON object")
        labels = alert.get("labels")
        if not isinstance(labels, Mapping):
            raise PayloadError("an alert has no labels")

        def label(key: str, labels: Mapping[str, Any] = labels) -> str | None:
            value = labels.get(key)
            return str(value) if value not in (None, "") else None

        refs.append(
            AlertRef(
                status=str(alert.get("status") or payload.get("status") or ""),
                alertname=label("alertname") or "",
                namespace=label("namespace"),
                promdemo=label("promdemo"),
                pod=label("pod"),
                instance=label("instance"),
                starts_at=parse_time(alert.get("startsAt")),
                fingerprint=label_free(alert.get("fingerprint")),
            )
        )
    return refs


def label_free(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def inventory_alerts(refs: list[AlertRef]) -> list[AlertRef]:
    """The `InventoryNegative` alerts among `refs` (other alerts are not the heal's business)."""
    return [r for r in refs if r.alertname == ALERT_NAME]


def host_port(url: str | None) -> str | None:
    """``host:port`` of a base URL, comparable with an alert's `instance` label."""
    if not url:
        return None
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0] or None
