"""core/spec.py: defaults, the typed spec, and the checks a CRD schema cannot express."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from promdemo_operator.core.duration import parse_duration
from promdemo_operator.core.spec import (
    DEFAULTS,
    PromDemoSpec,
    SpecError,
    apply_defaults,
    parse_spec,
)
from promdemo_operator.core.spec_fields import Nested, Seconds, declarations

# --------------------------------------------------------------------------- defaults


def test_apply_defaults_none_equals_empty():
    assert apply_defaults(None) == apply_defaults({}) == DEFAULTS


def test_apply_defaults_merges_deeply_and_keeps_given_values():
    given = {
        "replicas": 3,
        "app": {"simulation": {"enabled": False}},
        "autoHeal": {"for": "1m"},
        "monitoring": {"alerts": {"noSuccessOrders": {"minOrders": 5}}},
    }
    d = apply_defaults(given)
    assert d["replicas"] == 3
    assert d["app"]["initialInventory"] == 100
    assert d["app"]["simulation"] == {**DEFAULTS["app"]["simulation"], "enabled": False}
    assert d["autoHeal"]["for"] == "1m"
    assert d["autoHeal"]["interval"] == "5s"
    assert d["monitoring"]["alerts"]["noSuccessOrders"] == {
        "minOrders": 5,
        "window": "30m",
        "for": "5m",
    }
    assert (
        d["monitoring"]["alerts"]["highLatencyP95"]
        == DEFAULTS["monitoring"]["alerts"]["highLatencyP95"]
    )


def test_apply_defaults_null_means_default():
    """The API server defaults a null field (non-nullable); so does apply_defaults."""
    d = apply_defaults({"replicas": None, "app": None, "monitoring": {"labels": None}})
    assert d["replicas"] == 1
    assert d["app"] == DEFAULTS["app"]
    assert d["monitoring"]["labels"] == {}


def test_apply_defaults_does_not_mutate_its_input_or_the_defaults():
    given = {"app": {"simulation": {"enabled": False}}, "monitoring": {"labels": {"a": "b"}}}
    before = copy.deepcopy(given)
    pristine = copy.deepcopy(DEFAULTS)
    d = apply_defaults(given)
    d["app"]["simulation"]["enabled"] = True
    d["monitoring"]["alerts"]["inventoryNegative"]["for"] = "9m"
    d["monitoring"]["labels"]["x"] = "y"
    assert given == before
    assert pristine == DEFAULTS
    assert apply_defaults({})["monitoring"]["labels"] == {}


def test_user_labels_replace_the_default_map_and_are_not_merged_with_it():
    d = apply_defaults({"monitoring": {"labels": {"release": "prometheus"}}})
    assert d["monitoring"]["labels"] == {"release": "prometheus"}


def test_apply_defaults_keeps_wrong_types_for_parse_spec_to_report():
    d = apply_defaults({"app": "nope", "replicas": "3"})
    assert d["app"] == "nope"
    assert d["replicas"] == "3"


def test_apply_defaults_rejects_a_non_object():
    with pytest.raises(SpecError) as caught:
        apply_defaults(["replicas"])  # type: ignore[arg-type]
    assert caught.value.reason == "InvalidType"


# --------------------------------------------------------------------------- typed spec


def test_parse_spec_holds_each_default_in_the_attribute_that_declares_it():
    """The typed spec of `{}`: each field's default, each duration also in seconds."""

    def check(obj: object, defaults: dict, path: str) -> None:
        for item, declaration in declarations(type(obj)):
            value = getattr(obj, item.name)
            if isinstance(declaration, Seconds):
                assert value == parse_duration(getattr(obj, declaration.of)), item.name
            elif isinstance(declaration, Nested):
                check(value, defaults[declaration.name], f"{path}.{declaration.name}")
            else:
                assert value == defaults[declaration.name], f"{path}.{declaration.name}"
                assert type(value) is not str or isinstance(declaration.default, str)

    s = parse_spec({})
    assert isinstance(s, PromDemoSpec)
    check(s, DEFAULTS, "spec")
    # What the renderers compute with, for the defaults docs/crd.md lists.
    assert s.auto_heal.interval_seconds == 5.0
    assert s.monitoring.scrape_interval_seconds == 15.0
    nso = s.monitoring.alerts.no_success_orders
    assert (nso.window, nso.window_seconds, nso.for_duration, nso.for_seconds) == (
        "30m", 1800.0, "5m", 300.0,
    )  # fmt: skip
    assert isinstance(s.replicas, int)
    assert isinstance(s.monitoring.alerts.high_latency_p95.threshold_seconds, float)


def test_parse_spec_is_frozen():
    s = parse_spec({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.replicas = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.monitoring.labels["x"] = "y"  # type: ignore[index]


def test_parse_spec_equal_specs_compare_equal():
    assert parse_spec({}) == parse_spec({"replicas": 1})
    assert parse_spec({}) != parse_spec({"replicas": 2})


def test_parse_spec_full():
    s = parse_spec(
        {
            "replicas": 3,
            "image": "registry.example/promdemo:1.2",
            "imagePullPolicy": "Always",
            "app": {
                "initialInventory": 5,
                "oversell": False,
                "simulation": {
                    "enabled": False,
                    "dependencyMinSeconds": 0,
                    "dependencyMaxSeconds": 0,
                    "dependencyFailureRate": 0,
                    "processingMinSeconds": 1,
                    "processingMaxSeconds": 2,
                },
            },
            "autoHeal": {
                "enabled": False,
                "source": "alertmanager",
                "threshold": -10,
                "interval": "1s",
                "for": "1m30s",
                "cooldown": "0s",
                "podAccess": "apiProxy",
            },
            "monitoring": {"scrapeInterval": "30s", "labels": {"release": "prometheus"}},
        }
    )
    assert s.replicas == 3
    assert s.app.simulation.processing_max_seconds == 2.0
    assert s.auto_heal.source == "alertmanager"
    assert s.auto_heal.threshold == -10
    assert s.auto_heal.interval_seconds == 1.0
    assert s.auto_heal.for_seconds == 90.0
    assert s.auto_heal.cooldown_seconds == 0.0
    assert s.auto_heal.pod_access == "apiProxy"
    assert s.monitoring.scrape_interval_seconds == 30.0
    assert dict(s.monitoring.labels) == {"release": "prometheus"}


def test_integral_floats_are_integers():
    """JSON from some clients says 2.0 for 2."""
    assert parse_spec({"replicas": 2.0}).replicas == 2


@pytest.mark.parametrize(
    ("spec", "reason", "field"),
    [
        ({"replicas": 51}, "OutOfRange", "spec.replicas"),
        ({"replicas": -1}, "OutOfRange", "spec.replicas"),
        ({"replicas": True}, "InvalidType", "spec.replicas"),
        ({"replicas": 1.5}, "InvalidType", "spec.replicas"),
        ({"replicas": "2"}, "InvalidType", "spec.replicas"),
        ({"image": ""}, "InvalidValue", "spec.image"),
        ({"image": "promdemo 0.1"}, "InvalidValue", "spec.image"),
        ({"imagePullPolicy": "Sometimes"}, "InvalidValue", "spec.imagePullPolicy"),
        ({"app": "x"}, "InvalidType", "spec.app"),
        ({"app": {"initialInventory": 1_000_001}}, "OutOfRange", "spec.app.initialInventory"),
        ({"app": {"oversell": "yes"}}, "InvalidType", "spec.app.oversell"),
        (
            {"app": {"simulation": {"dependencyFailureRate": 1.01}}},
            "OutOfRange",
            "spec.app.simulation.dependencyFailureRate",
        ),
        (
            {"app": {"simulation": {"dependencyMaxSeconds": 61}}},
            "OutOfRange",
            "spec.app.simulation.dependencyMaxSeconds",
        ),
        (
            {"app": {"simulation": {"dependencyMinSeconds": 2, "dependencyMaxSeconds": 1}}},
            "InvalidRange",
            "spec.app.simulation.dependencyMinSeconds",
        ),
        (
            {"app": {"simulation": {"processingMinSeconds": 0.6}}},
            "InvalidRange",
            "spec.app.simulation.processingMinSeconds",
        ),
        ({"autoHeal": {"podAccess": "sidecar"}}, "InvalidValue", "spec.autoHeal.podAccess"),
        ({"autoHeal": {"source": "prometheus"}}, "InvalidValue", "spec.autoHeal.source"),
        ({"autoHeal": {"interval": "5 s"}}, "InvalidDuration", "spec.autoHeal.interval"),
        ({"autoHeal": {"interval": "0s"}}, "OutOfRange", "spec.autoHeal.interval"),
        ({"autoHeal": {"interval": 5}}, "InvalidType", "spec.autoHeal.interval"),
        ({"autoHeal": {"cooldown": "30s1m"}}, "InvalidDuration", "spec.autoHeal.cooldown"),
        ({"autoHeal": {"for": "1d"}}, "InvalidDuration", "spec.autoHeal.for"),
        ({"autoHeal": {"threshold": 0.5}}, "InvalidType", "spec.autoHeal.threshold"),
        (
            {"monitoring": {"scrapeInterval": "0s"}},
            "OutOfRange",
            "spec.monitoring.scrapeInterval",
        ),
        (
            {"monitoring": {"serviceMonitor": "true"}},
            "InvalidType",
            "spec.monitoring.serviceMonitor",
        ),
        ({"monitoring": {"labels": ["release"]}}, "InvalidType", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"bad key": "x"}}}, "InvalidLabel", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"-x": "y"}}}, "InvalidLabel", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"x": "a b"}}}, "InvalidLabel", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"x": 1}}}, "InvalidLabel", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"x": "v" * 64}}}, "InvalidLabel", "spec.monitoring.labels"),
        ({"monitoring": {"labels": {"x" * 64: "v"}}}, "InvalidLabel", "spec.monitoring.labels"),
        (
            {"monitoring": {"labels": {f"k{i}": "v" for i in range(21)}}},
            "OutOfRange",
            "spec.monitoring.labels",
        ),
        (
            {
                "monitoring": {
                    "scrapeInterval": "1m",
                    "alerts": {"highLatencyP95": {"window": "1m"}},
                }
            },
            "WindowTooShort",
            "spec.monitoring.alerts.highLatencyP95.window",
        ),
        (
            {"monitoring": {"alerts": {"lowSuccessRate": {"threshold": 90}}}},
            "OutOfRange",
            "spec.monitoring.alerts.lowSuccessRate.threshold",
        ),
        (
            {"monitoring": {"alerts": {"noSuccessOrders": {"minOrders": -1}}}},
            "OutOfRange",
            "spec.monitoring.alerts.noSuccessOrders.minOrders",
        ),
        (
            {"monitoring": {"alerts": {"dependencyErrors": {"for": "soon"}}}},
            "InvalidDuration",
            "spec.monitoring.alerts.dependencyErrors.for",
        ),
        ({"replica": 3}, "UnknownField", "spec.replica"),
        ({"autoHeal": {"enable": False}}, "UnknownField", "spec.autoHeal.enable"),
        (
            {"monitoring": {"alerts": {"inventoryNegative": {"window": "5m"}}}},
            "UnknownField",
            "spec.monitoring.alerts.inventoryNegative.window",
        ),
    ],
)
def test_parse_spec_rejects(spec: dict, reason: str, field: str):
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    err = caught.value
    assert err.reason == reason, err.message
    assert err.field == field
    assert err.message.startswith(field), err.message
    assert str(err) == err.message
    assert "\n" not in err.message
    assert isinstance(err, ValueError)


def test_label_keys_with_prefixes_are_fine():
    s = parse_spec(
        {"monitoring": {"labels": {"release": "prometheus", "example.com/team": "shop", "t": ""}}}
    )
    assert dict(s.monitoring.labels) == {
        "release": "prometheus",
        "example.com/team": "shop",
        "t": "",
    }


def test_windows_of_exactly_two_scrapes_are_fine():
    s = parse_spec(
        {"monitoring": {"scrapeInterval": "1m", "alerts": {"highLatencyP95": {"window": "2m"}}}}
    )
    assert s.monitoring.alerts.high_latency_p95.window == "2m"


def test_min_equal_max_is_fine():
    s = parse_spec({"app": {"simulation": {"dependencyMinSeconds": 1, "dependencyMaxSeconds": 1}}})
    assert s.app.simulation.dependency_min_seconds == s.app.simulation.dependency_max_seconds
