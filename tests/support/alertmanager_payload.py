"""An Alertmanager webhook notification (version 4) as Alertmanager posts it: the
InventoryNegative alert of one pod firing, another alert the heal ignores, and an
InventoryNegative resolved that names its target by instance only."""

from __future__ import annotations

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "promdemo",
    "groupKey": '{}:{alertname="InventoryNegative"}',
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "InventoryNegative",
                "namespace": "demo",
                "pod": "shop-a",
                "promdemo": "shop",
                "instance": "10.0.0.5:8080",
            },
            "startsAt": "2026-11-22T02:47:53.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abc",
        },
        {"status": "firing", "labels": {"alertname": "HighLatencyP95", "job": "shop"}},
        {
            "status": "resolved",
            "labels": {"alertname": "InventoryNegative", "instance": "10.0.0.6:8080"},
        },
    ],
}
