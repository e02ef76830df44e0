"""Alertmanager webhook payloads → the pods an `InventoryNegative` alert points at.

Pure parsing, no HTTP server (that is `runtime/handlers/webhook.py`). Alertmanager's
webhook payload (version "4") is a group notification::

    {"version": "4", "status": "firing", "receiver": "...", "groupKey": "...",
     "alerts": [{"status": "firing" | "resolved", "labels": {...},
                 "annotations": {...}, "startsAt": "RFC3339", "endsAt": "...",
                 "fingerprint": "..."}], ...}

Each alert in it is judged on its own `status` (a group can mix firing and
resolved alerts). The `InventoryNegative` rule (`operator/promdemo_operator/core/rules.py`) keeps
every label of the `product_inventory` series: `instance` (``host:port`` of
the scraped pod) always; `namespace` and `pod` under prometheus-operator; a
`promdemo` label when the rule's extra labels add it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALERT_NAME = "InventoryNegative"

# Every field is bounded before it is looked at: Alertmanager sends a few dozen
# characters in each, and a client sending 400,000 fractional digits in
# `startsAt` blocked the event loop for 3.3 s (the parse was quadratic).
MAX_TIME_CHARS = 64  # "2026-12-07T10:05:00.123456789+00:00" is 35
MAX_LABEL_CHARS = 1024  # Kubernetes names are at most 253; host:port fewer
MAX_STATUS_CHARS = 16
MAX_ALERTS = 1000
_RFC3339 = re.compile(
    r"(?P<head>[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,20}))?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


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
    """RFC 3339 (Alertmanager's nanosecond precision too) → epoch seconds; None if unset.

    Text over MAX_TIME_CHARS, or with other than ASCII digits, is not a time (None).
    """
    if not isinstance(text, str) or not text or len(text) > MAX_TIME_CHARS:
        return None
    match = _RFC3339.fullmatch(text.strip())
    if match is None or text.startswith("0001-01-01"):
        return None
    # Python's fromisoformat takes at most 6 fractional digits.
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or "+00:00"
    zone = "+00:00" if zone in "Zz" else zone
    try:
        return datetime.fromisoformat(f"{match['head'].replace('t', 'T')}.{frac}{zone}").timestamp()
    except ValueError:
        return None


def parse_payload(payload: Any) -> list[AlertRef]:
    """Every alert of a webhook payload; raises `PayloadError` for anything else."""
    if not isinstance(payload, Mapping):
        raise PayloadError("payload is not a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("payload has no 'alerts' list")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"payload has more than {MAX_ALERTS} alerts")
    refs = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            raise PayloadError("an alert is not a JSON object")
        labels = alert.get("labels")
        if not isinstance(labels, Mapping):
            raise PayloadError("an alert has no labels")

        def label(key: str, labels: Mapping[str, Any] = labels) -> str | None:
            # A value no label of a pod can have (not a string, or too long) names nothing.
            value = labels.get(key)
            if not isinstance(value, str) or not value or len(value) > MAX_LABEL_CHARS:
                return None
            return value

        refs.append(
            AlertRef(
                status=short(alert.get("status")) or short(payload.get("status")) or "",
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
    return value if isinstance(value, str) and value and len(value) <= MAX_LABEL_CHARS else None


def short(value: Any) -> str | None:
    """A status word: a string of at most MAX_STATUS_CHARS, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_STATUS_CHARS else None


def inventory_alerts(refs: list[AlertRef]) -> list[AlertRef]:
    """The `InventoryNegative` alerts among `refs` (other alerts are not the heal's business)."""
    return [r for r in refs if r.alertname == ALERT_NAME]


def host_port(url: str | None) -> str | None:
    """``host:port`` of a base URL, comparable with an alert's `instance` label."""
    if not url:
        return None
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0] or None
