"""Floors and ceilings: parse_spec, the CRD schema (with its CEL rules) and `promdemo render`
agree on every numeric and duration field of the spec.

The bounds are declared once, beside each field of the typed spec (core/spec.py), and
listed by path in `spec.NUMBER_BOUNDS` and `spec.DURATION_BOUNDS`; the CRD's
minimum/maximum and CEL rules are generated from them. Each test here sets one field
to its bound and just past it, and asks both judges. A file never passes an API
server, so parse_spec must refuse everything the schema refuses; the schema refuses
it first in a cluster, with the API server's message.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from promdemo_operator.cli import main as cli
from promdemo_operator.core.duration import format_seconds
from promdemo_operator.core.spec import DURATION_BOUNDS, NUMBER_BOUNDS, SpecError, parse_spec
from tests.support.crd import schema_errors

INTEGER_FIELDS = {
    "spec.replicas",
    "spec.app.initialInventory",
    "spec.autoHeal.threshold",
    "spec.monitoring.alerts.noSuccessOrders.minOrders",
}
WINDOWS = {path for path in DURATION_BOUNDS if path.endswith(".window")}
# Pairs that parse_spec keeps ordered (min <= max): testing one end, the other is set wide.
PARTNERS = {
    "spec.app.simulation.dependencyMinSeconds": ("spec.app.simulation.dependencyMaxSeconds", 60),
    "spec.app.simulation.dependencyMaxSeconds": ("spec.app.simulation.dependencyMinSeconds", 0),
    "spec.app.simulation.processingMinSeconds": ("spec.app.simulation.processingMaxSeconds", 60),
    "spec.app.simulation.processingMaxSeconds": ("spec.app.simulation.processingMinSeconds", 0),
}


def with_field(path: str, value: Any) -> dict[str, Any]:
    """A PromDemo whose spec sets `path` (`spec.a.b`) to `value`, and what it needs beside it."""
    spec: dict[str, Any] = {}
    settings = {path: value}
    if path in WINDOWS:
        # A window's floor (2s) is two scrapes at the scrape interval's floor (1s).
        settings["spec.monitoring.scrapeInterval"] = "1s"
    if path in PARTNERS:
        partner, partner_value = PARTNERS[path]
        settings[partner] = partner_value
    for dotted, item in settings.items():
        node = spec
        *parents, leaf = dotted.split(".")[1:]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = copy.deepcopy(item)
    return {
        "apiVersion": "promdemo.dev/v1alpha1",
        "kind": "PromDemo",
        "metadata": {"name": "limits"},
        "spec": spec,
    }


def field_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def assert_both_accept(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []
    parse_spec(doc["spec"])


def assert_both_refuse(doc: dict[str, Any], path: str) -> SpecError:
    errors = schema_errors(doc)
    wheres = [where for where, _ in errors]
    assert field_path(path) in wheres, errors
    # A duration the window rules of spec.monitoring cannot read fails them too, on the
    # API server as here; no error lands anywhere else.
    assert all(field_path(path)[: len(where)] == where for where in wheres), errors
    with pytest.raises(SpecError) as caught:
        parse_spec(doc["spec"])
    assert caught.value.field == path
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert "\n" not in caught.value.message
    return caught.value


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize("path", sorted(DURATION_BOUNDS))
def test_a_duration_at_its_floor_and_ceiling_is_accepted(path: str):
    bounds = DURATION_BOUNDS[path]
    for seconds in (bounds.low, bounds.high):
        assert_both_accept(with_field(path, format_seconds(seconds)))


@pytest.mark.parametrize("path", sorted(DURATION_BOUNDS))
def test_a_duration_past_its_floor_or_ceiling_is_refused(path: str):
    bounds = DURATION_BOUNDS[path]
    past = [bounds.high + 0.001] + ([bounds.low - 0.001] if bounds.low > 0 else [])
    for seconds in past:
        error = assert_both_refuse(with_field(path, format_seconds(seconds)), path)
        assert error.reason == "OutOfRange"
        low, high = format_seconds(bounds.low), format_seconds(bounds.high)
        assert error.message.endswith(f"must be between {low} and {high}")


@pytest.mark.parametrize("path", sorted(DURATION_BOUNDS))
def test_a_duration_prometheus_cannot_hold_is_refused(path: str):
    """promtool refuses `for: 9999999999h` ("duration out of range"); so does everything here."""
    error = assert_both_refuse(with_field(path, "9999999999h"), path)
    assert error.reason == "InvalidDuration"


@pytest.mark.parametrize("path", sorted(WINDOWS))
def test_a_window_spans_two_scrapes_in_both(path: str):
    at_two = with_field(path, "1m")
    at_two["spec"]["monitoring"]["scrapeInterval"] = "30s"
    assert_both_accept(at_two)

    short = with_field(path, "59s999ms")
    short["spec"]["monitoring"]["scrapeInterval"] = "30s"
    errors = schema_errors(short)
    assert [where for where, _ in errors] == [("spec", "monitoring")], errors
    alert = path.split(".")[-2]
    assert errors[0][1].startswith(f"alerts.{alert}.window must be at least twice scrapeInterval")
    with pytest.raises(SpecError) as caught:
        parse_spec(short["spec"])
    assert (caught.value.reason, caught.value.field) == ("WindowTooShort", path)


def test_the_demo_settings_stay_usable():
    """What the tests, the benchmark and `promdemo local` run with."""
    spec = {
        "autoHeal": {"interval": "1s", "for": "0s", "cooldown": "0s"},
        "monitoring": {
            "scrapeInterval": "1s",
            "alerts": {
                "inventoryNegative": {"for": "0s"},
                "highLatencyP95": {"window": "2s", "for": "0s"},
            },
        },
    }
    assert_both_accept({"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo", "spec": spec})


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("path", sorted(NUMBER_BOUNDS))
def test_a_number_at_its_floor_and_ceiling_is_accepted(path: str):
    bounds = NUMBER_BOUNDS[path]
    for value in (bounds.low, bounds.high):
        if path in INTEGER_FIELDS:
            value = int(value)
        assert_both_accept(with_field(path, value))


@pytest.mark.parametrize("path", sorted(NUMBER_BOUNDS))
def test_a_number_past_its_floor_or_ceiling_is_refused(path: str):
    bounds = NUMBER_BOUNDS[path]
    step = 1 if path in INTEGER_FIELDS else 0.0005
    for value in (bounds.low - step, bounds.high + step, 10**400, -(10**400)):
        error = assert_both_refuse(with_field(path, value), path)
        assert error.reason == "OutOfRange"


@pytest.mark.parametrize("path", sorted(NUMBER_BOUNDS))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused(path: str, value: float):
    """YAML reads .nan and .inf; JSON cannot carry them, so only files get here."""
    with pytest.raises(SpecError) as caught:
        parse_spec(with_field(path, value)["spec"])
    assert (caught.value.reason, caught.value.field) == ("InvalidValue", path)
    assert caught.value.message == f"{path}: {value} is not a finite number"


def test_a_huge_integer_is_shown_by_its_size():
    with pytest.raises(SpecError) as caught:
        parse_spec({"replicas": -(10**5000)})  # str() of it would raise (4300-digit cap)
    assert caught.value.message == (
        "spec.replicas: a negative integer of about 5001 digits must be between 0 and 50"
    )


# --------------------------------------------------------------------------- promdemo render


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("monitoring: {alerts: {dependencyErrors: {ratePerSecond: 1" + "0" * 400 + "}}}",
         "spec.monitoring.alerts.dependencyErrors.ratePerSecond"),
        ("monitoring: {alerts: {lowSuccessRate: {threshold: .nan}}}",
         "spec.monitoring.alerts.lowSuccessRate.threshold"),
        ("monitoring: {alerts: {highLatencyP95: {thresholdSeconds: 1.0e+400}}}",
         "spec.monitoring.alerts.highLatencyP95.thresholdSeconds"),
        ("autoHeal: {interval: 1ms}", "spec.autoHeal.interval"),
        ("monitoring: {scrapeInterval: 1ms}", "spec.monitoring.scrapeInterval"),
        ("monitoring: {alerts: {noSuccessOrders: {for: 9999999999h}}}",
         "spec.monitoring.alerts.noSuccessOrders.for"),
        ("monitoring: {alerts: {lowSuccessRate: {window: 9999999999h}}}",
         "spec.monitoring.alerts.lowSuccessRate.window"),
    ],
)  # fmt: skip
def test_render_refuses_with_exit_2_and_one_line(
    setting: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / "limits.yaml"
    path.write_text(
        "apiVersion: promdemo.dev/v1alpha1\nkind: PromDemo\nmetadata: {name: shop}\n"
        f"spec: {{{setting}}}\n"
    )
    assert cli.main(["render", "-f", str(path), "--token", "t"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"promdemo render: {path}: PromDemo 'shop': {field}: "), line
