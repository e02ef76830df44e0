"""Alertmanager's notifications, read (heal/alertmanager.py): the inventory alerts and their pod."""

from __future__ import annotations

import pytest

from promdemo_operator.heal.alertmanager import (
    PayloadError,
    inventory_alerts,
    parse_payload,
    parse_time,
)
from tests.support.alertmanager_payload import PAYLOAD


def test_parse_payload() -> None:
    refs = inventory_alerts(parse_payload(PAYLOAD))
    assert [(r.status, r.pod, r.instance) for r in refs] == [
        ("firing", "shop-a", "10.0.0.5:8080"),
        ("resolved", None, "10.0.0.6:8080"),
    ]
    assert refs[0].promdemo == "shop"
    assert refs[0].starts_at == pytest.approx(parse_time("2026-11-22T02:47:53.123456Z"))
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("2026-11-22T02:47:53+01:00") is not None
    for bad in ([], {"alerts": "x"}, {"alerts": [1]}, {"alerts": [{"labels": 3}]}):
        with pytest.raises(PayloadError):
            parse_payload(bad)
