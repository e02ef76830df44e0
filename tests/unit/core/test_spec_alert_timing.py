"""core/spec.py's AlertTiming: the window and `for` fields every alert shares, declared once."""

from __future__ import annotations

import dataclasses

import pytest

from promdemo_operator.core.spec import (
    DURATION_BOUNDS,
    AlertsSpec,
    AlertTiming,
    SpecError,
    parse_spec,
)
from promdemo_operator.core.spec_fields import (
    Bounds,
    Integer,
    Nested,
    declarations,
    declared,
    nested_class,
    object_schema,
)

ALERTS = {
    declaration.name: nested_class(AlertsSpec, item.name)
    for item, declaration in declarations(AlertsSpec)
}


@dataclasses.dataclass(frozen=True)
class SlowOrdersAlert(AlertTiming, window="10m", function="rate()", over="orders_total"):
    """A sixth alert, declared as the five are."""

    slowest: int = declared(
        Integer(name="slowest", default=3, bounds=Bounds(0, 10), description="At most.")
    )


def test_an_alert_declares_its_own_fields_and_gets_the_timing_after_them():
    schema = object_schema(SlowOrdersAlert, Nested(name="slowOrders"))
    assert list(schema["properties"]) == ["slowest", "window", "for"]
    window, for_ = schema["properties"]["window"], schema["properties"]["for"]
    assert (window["default"], for_["default"]) == ("10m", "5m")
    assert window["description"] == "The range of rate() over orders_total (2s to 24h)."
    assert window["x-kubernetes-validations"][0]["message"] == "must be between 2s and 24h"
    assert for_["x-kubernetes-validations"][0]["message"] == "must be between 0s and 24h"
    assert SlowOrdersAlert.window_function == "rate()"
    names = [item.name for item, _ in declarations(SlowOrdersAlert)]
    assert names == ["slowest", "window", "window_seconds", "for_duration", "for_seconds"]


def test_the_five_alerts_share_one_shape():
    assert list(ALERTS) == [
        "inventoryNegative",
        "noSuccessOrders",
        "highLatencyP95",
        "lowSuccessRate",
        "dependencyErrors",
    ]
    for name, cls in ALERTS.items():
        assert issubclass(cls, AlertTiming), name
        assert DURATION_BOUNDS[f"spec.monitoring.alerts.{name}.for"] == Bounds(0, 86_400)
        if name == "inventoryNegative":  # an instant gauge: no range, `for` alone
            assert cls.window_function is None
            assert f"spec.monitoring.alerts.{name}.window" not in DURATION_BOUNDS
        else:
            assert DURATION_BOUNDS[f"spec.monitoring.alerts.{name}.window"] == Bounds(2, 86_400)


@pytest.mark.parametrize("name", [n for n, cls in ALERTS.items() if cls.window_function])
def test_every_alert_over_a_range_has_its_window_in_seconds_and_two_scrapes(name: str):
    spec = parse_spec({"monitoring": {"alerts": {name: {"window": "1m30s", "for": "2m"}}}})
    alert = next(
        getattr(spec.monitoring.alerts, item.name)
        for item, declaration in declarations(AlertsSpec)
        if declaration.name == name
    )
    assert (alert.window, alert.window_seconds) == ("1m30s", 90.0)
    assert (alert.for_duration, alert.for_seconds) == ("2m", 120.0)

    # The shape gives each such alert the check that its window holds two scrapes.
    short = {"scrapeInterval": "1m", "alerts": {name: {"window": "1m"}}}
    with pytest.raises(SpecError) as caught:
        parse_spec({"monitoring": short})
    assert caught.value.reason == "WindowTooShort"
    assert caught.value.field == f"spec.monitoring.alerts.{name}.window"
    assert ALERTS[name].window_function in caught.value.message
