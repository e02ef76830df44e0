"""The PromDemo spec: its defaults, its bounds, its validation and its typed form.

`apply_defaults(spec)` fills every missing field with the same default the
CRD's schema sets (`crds/promdemos.promdemo.dev.yaml`; a unit test keeps the
two equal), so a spec read from a file (`promdemo render`, `promdemo local`)
means the same as one the API server has defaulted.

`NUMBER_BOUNDS` and `DURATION_BOUNDS` hold the floor and ceiling of every
numeric and duration field (docs/crd.md says why each is where it is); the
CRD states the same bounds as `minimum`/`maximum` and CEL rules, and a unit
test keeps them equal.

`parse_spec(spec)` defaults, then validates, then returns frozen dataclasses.
It checks everything the schema checks, because a file never went through an
API server (and an older one skips CEL rules), and what a schema cannot
express: min <= max pairs, durations Prometheus would refuse (`30s1m`), label
keys. A problem is a `SpecError(reason, message)`; the message is one line
that names the field.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from promdemo_operator.duration import DurationError, format_seconds, parse_duration

__all__ = [
    "DEFAULTS",
    "DURATION_BOUNDS",
    "NUMBER_BOUNDS",
    "AlertsSpec",
    "AppSpec",
    "AutoHealSpec",
    "Bounds",
    "DependencyErrorsAlert",
    "HighLatencyP95Alert",
    "InventoryNegativeAlert",
    "LowSuccessRateAlert",
    "MonitoringSpec",
    "NoSuccessOrdersAlert",
    "PromDemoSpec",
    "SimulationSpec",
    "SpecError",
    "apply_defaults",
    "parse_spec",
]

#: Label keys (`prefix/name`) and values, as Kubernetes accepts them.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_MONITORING_LABELS = 20
IMAGE_MAX_LENGTH = 512

IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
HEAL_SOURCES = ("direct", "alertmanager")
POD_ACCESS_MODES = ("auto", "podIP", "apiProxy")
#: spec.monitoring.matchPrometheus: `auto` adds the labels the one able Prometheus needs.
MATCH_PROMETHEUS_MODES = ("off", "auto")

#: The full default spec (docs/architecture.md is binding). Read-only use: copy it.
DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "image": "ghcr.io/promdemo/promdemo:0.1.0",
    "imagePullPolicy": "IfNotPresent",
    "app": {
        "initialInventory": 100,
        "oversell": True,
        "simulation": {
            "enabled": True,
            "dependencyMinSeconds": 0.05,
            "dependencyMaxSeconds": 1.5,
            "dependencyFailureRate": 0.1,
            "processingMinSeconds": 0.1,
            "processingMaxSeconds": 0.5,
        },
    },
    "autoHeal": {
        "enabled": True,
        "source": "direct",
        "threshold": 0,
        "interval": "5s",
        "for": "0s",
        "cooldown": "30s",
        "podAccess": "auto",
    },
    "monitoring": {
        "serviceMonitor": True,
        "prometheusRule": True,
        "scrapeInterval": "15s",
        "labels": {},
        "matchPrometheus": "off",
        "alerts": {
            "inventoryNegative": {"for": "0s"},
            "noSuccessOrders": {"minOrders": 100, "window": "30m", "for": "5m"},
            "highLatencyP95": {"thresholdSeconds": 1, "window": "5m", "for": "5m"},
            "lowSuccessRate": {"threshold": 0.9, "window": "5m", "for": "5m"},
            "dependencyErrors": {"ratePerSecond": 0.2, "window": "5m", "for": "5m"},
        },
    },
}


# --------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class Bounds:
    """The smallest and largest value a field accepts (seconds, for a duration)."""

    low: float
    high: float


_DAY_SECONDS = 86_400.0
_SIMULATION = Bounds(0, 60)
_ALERT_FOR = Bounds(0, _DAY_SECONDS)
_ALERT_WINDOW = Bounds(2, _DAY_SECONDS)  # floor: two scrapes at the scrapeInterval floor

#: Floor and ceiling of every numeric field (the CRD's minimum/maximum say the same;
#: docs/crd.md gives the reason of each).
NUMBER_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "spec.replicas": Bounds(0, 50),
        "spec.app.initialInventory": Bounds(0, 1_000_000),
        "spec.app.simulation.dependencyMinSeconds": _SIMULATION,
        "spec.app.simulation.dependencyMaxSeconds": _SIMULATION,
        "spec.app.simulation.dependencyFailureRate": Bounds(0, 1),
        "spec.app.simulation.processingMinSeconds": _SIMULATION,
        "spec.app.simulation.processingMaxSeconds": _SIMULATION,
        "spec.autoHeal.threshold": Bounds(-1_000_000, 1_000_000),
        "spec.monitoring.alerts.noSuccessOrders.minOrders": Bounds(0, 1_000_000_000),
        "spec.monitoring.alerts.highLatencyP95.thresholdSeconds": Bounds(0.001, 3600),
        "spec.monitoring.alerts.lowSuccessRate.threshold": Bounds(0, 1),
        "spec.monitoring.alerts.dependencyErrors.ratePerSecond": Bounds(0, 1_000_000),
    }
)

#: Floor and ceiling, in seconds, of every duration field (the CRD's CEL rules say the
#: same; docs/crd.md gives the reason of each). Alert windows must also span two scrapes.
DURATION_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "spec.autoHeal.interval": Bounds(1, 3600),
        "spec.autoHeal.for": Bounds(0, _DAY_SECONDS),
        "spec.autoHeal.cooldown": Bounds(0, _DAY_SECONDS),
        "spec.monitoring.scrapeInterval": Bounds(1, 120),
        "spec.monitoring.alerts.inventoryNegative.for": _ALERT_FOR,
        "spec.monitoring.alerts.noSuccessOrders.window": _ALERT_WINDOW,
        "spec.monitoring.alerts.noSuccessOrders.for": _ALERT_FOR,
        "spec.monitoring.alerts.highLatencyP95.window": _ALERT_WINDOW,
        "spec.monitoring.alerts.highLatencyP95.for": _ALERT_FOR,
        "spec.monitoring.alerts.lowSuccessRate.window": _ALERT_WINDOW,
        "spec.monitoring.alerts.lowSuccessRate.for": _ALERT_FOR,
        "spec.monitoring.alerts.dependencyErrors.window": _ALERT_WINDOW,
        "spec.monitoring.alerts.dependencyErrors.for": _ALERT_FOR,
    }
)

# Maps whose keys are user data (not fields): defaults never merge into them.
_FREE_MAPS = {("monitoring", "labels")}

_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)


class SpecError(ValueError):
    """A spec the operator cannot run. `reason` is a CamelCase word, `message` one line."""

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------- defaults


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], path: tuple[str, ...]) -> dict:
    merged: dict[str, Any] = {}
    for key, value in given.items():
        merged[key] = copy.deepcopy(value)
    for key, default in defaults.items():
        here = (*path, key)
        if key not in merged or merged[key] is None:
            merged[key] = copy.deepcopy(default)
        elif (
            isinstance(default, Mapping)
            and isinstance(merged[key], Mapping)
            and here not in _FREE_MAPS
        ):
            merged[key] = _merge(default, merged[key], here)
    return merged


def apply_defaults(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of `spec` with every missing (or null) field set to its default.

    Only fills in: a value of the wrong type stays as it is (parse_spec reports
    it). Unknown fields are kept. `monitoring.labels` given by the user replaces
    the default `{}`.
    """
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise SpecError("InvalidType", f"spec: expected an object, got {_kind(spec)}", field="spec")
    return _merge(DEFAULTS, spec, ())


# --------------------------------------------------------------------------- typed spec
# A duration field keeps the text the user wrote (what goes into Prometheus YAML,
# as written) next to its value in seconds (what Python code computes with).


@dataclass(frozen=True)
class SimulationSpec:
    """spec.app.simulation: the simulated dependency and processing."""

    enabled: bool
    dependency_min_seconds: float
    dependency_max_seconds: float
    dependency_failure_rate: float  # 0-1
    processing_min_seconds: float
    processing_max_seconds: float


@dataclass(frozen=True)
class AppSpec:
    """spec.app: the order service's knobs."""

    initial_inventory: int
    oversell: bool
    simulation: SimulationSpec


@dataclass(frozen=True)
class AutoHealSpec:
    """spec.autoHeal; its durations (`interval`, `for`, `cooldown`) in seconds."""

    enabled: bool
    source: str  # direct | alertmanager
    threshold: int  # reset a pod when its inventory < threshold
    interval_seconds: float
    for_seconds: float
    cooldown_seconds: float
    pod_access: str  # auto | podIP | apiProxy


@dataclass(frozen=True)
class InventoryNegativeAlert:
    """spec.monitoring.alerts.inventoryNegative."""

    for_duration: str  # the alert's `for`, as written
    for_seconds: float


@dataclass(frozen=True)
class NoSuccessOrdersAlert:
    """spec.monitoring.alerts.noSuccessOrders."""

    min_orders: int
    window: str  # the range of increase(), as written
    window_seconds: float
    for_duration: str
    for_seconds: float


@dataclass(frozen=True)
class HighLatencyP95Alert:
    """spec.monitoring.alerts.highLatencyP95."""

    threshold_seconds: float
    window: str
    window_seconds: float
    for_duration: str
    for_seconds: float


@dataclass(frozen=True)
class LowSuccessRateAlert:
    """spec.monitoring.alerts.lowSuccessRate."""

    threshold: float  # a success ratio, 0-1
    window: str
    window_seconds: float
    for_duration: str
    for_seconds: float


@dataclass(frozen=True)
class DependencyErrorsAlert:
    """spec.monitoring.alerts.dependencyErrors."""

    rate_per_second: float
    window: str
    window_seconds: float
    for_duration: str
    for_seconds: float


@dataclass(frozen=True)
class AlertsSpec:
    """spec.monitoring.alerts: the thresholds of the PrometheusRule's alerts."""

    inventory_negative: InventoryNegativeAlert
    no_success_orders: NoSuccessOrdersAlert
    high_latency_p95: HighLatencyP95Alert
    low_success_rate: LowSuccessRateAlert
    dependency_errors: DependencyErrorsAlert


@dataclass(frozen=True)
class MonitoringSpec:
    """spec.monitoring: what the operator creates for prometheus-operator."""

    service_monitor: bool
    prometheus_rule: bool
    scrape_interval: str  # as written (the ServiceMonitor's `interval`)
    scrape_interval_seconds: float
    labels: Mapping[str, str]  # read-only
    alerts: AlertsSpec
    #: "off", or "auto": the operator adds the labels a Prometheus needs to select the objects.
    match_prometheus: str = "off"


@dataclass(frozen=True)
class PromDemoSpec:
    """A validated, defaulted PromDemo spec: what `parse_spec` returns."""

    replicas: int
    image: str
    image_pull_policy: str
    app: AppSpec
    auto_heal: AutoHealSpec
    monitoring: MonitoringSpec


# --------------------------------------------------------------------------- validation


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _show(value: float) -> str:
    """A number for a one-line message: short, and never a 400-digit integer."""
    if isinstance(value, int) and abs(value) >= 10**15:
        # str() of a huge int is long (and refused past 4300 digits): give its size.
        digits = math.floor(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    if isinstance(value, float) and value.is_integer() and abs(value) < 10**15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class _Duration:
    text: str
    seconds: float


class _Reader:
    """Reads one object of the spec; every error names the full field path."""

    def __init__(self, data: Any, path: str, fields: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(
                "InvalidType", f"{path}: expected an object, got {_kind(data)}", field=path
            )
        unknown = sorted(str(k) for k in data if k not in fields)
        if unknown:
            raise SpecError(
                "UnknownField",
                f"{path}.{unknown[0]}: unknown field (known: {', '.join(fields)})",
                field=f"{path}.{unknown[0]}",
            )
        self.data = data
        self.path = path

    def field(self, key: str) -> str:
        return f"{self.path}.{key}"

    def child(self, key: str) -> _Reader:
        return _Reader(self.data[key], self.field(key), _shape(self.path, key))

    def boolean(self, key: str) -> bool:
        value = self.data[key]
        if not isinstance(value, bool):
            raise self._type(key, "true or false")
        return value

    def integer(self, key: str) -> int:
        value = self.data[key]
        if isinstance(value, float):
            self._finite(key, value)
            if value.is_integer():  # JSON from some clients says 2.0 for 2
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type(key, "an integer")
        self._range(key, value)
        return value

    def number(self, key: str) -> float:
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._type(key, "a number")
        if isinstance(value, float):
            self._finite(key, value)
        # The range check comes first: an int too large for a float is out of range
        # (float() of it would raise OverflowError).
        self._range(key, value)
        return float(value)

    def string(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.data[key]
        if not isinstance(value, str):
            raise self._type(key, "a string")
        if choices is not None and value not in choices:
            raise SpecError(
                "InvalidValue",
                f"{self.field(key)}: {value!r} is not one of {', '.join(choices)}",
                field=self.field(key),
            )
        return value

    def duration(self, key: str) -> _Duration:
        field = self.field(key)
        value = self.data[key]
        if not isinstance(value, str):
            raise self._type(key, "a duration string such as 30s")
        try:
            seconds = parse_duration(value, field=field)
        except DurationError as exc:
            raise SpecError("InvalidDuration", exc.message, field=exc.field) from None
        bounds = DURATION_BOUNDS[field]
        if not bounds.low <= seconds <= bounds.high:
            raise SpecError(
                "OutOfRange",
                f"{field}: {value} must be between {format_seconds(bounds.low)}"
                f" and {format_seconds(bounds.high)}",
                field=field,
            )
        return _Duration(value, seconds)

    def _type(self, key: str, expected: str) -> SpecError:
        got = _kind(self.data[key])
        return SpecError(
            "InvalidType",
            f"{self.field(key)}: expected {expected}, got {got}",
            field=self.field(key),
        )

    def _finite(self, key: str, value: float) -> None:
        # YAML reads .nan and .inf (and 1.0e+400) as floats; no bound holds them.
        if not math.isfinite(value):
            raise SpecError(
                "InvalidValue",
                f"{self.field(key)}: {value} is not a finite number",
                field=self.field(key),
            )

    def _range(self, key: str, value: float) -> None:
        bounds = NUMBER_BOUNDS[self.field(key)]
        if not bounds.low <= value <= bounds.high:
            raise SpecError(
                "OutOfRange",
                f"{self.field(key)}: {_show(value)} must be between {_show(bounds.low)}"
                f" and {_show(bounds.high)}",
                field=self.field(key),
            )


def _shape(path: str, key: str) -> Mapping[str, Any]:
    node: Any = DEFAULTS
    for part in [*path.split(".")[1:], key]:
        node = node[part]
    return node


def _ordered(
    reader: _Reader, low_key: str, low: float, high_key: str, high: float, *, what: str
) -> None:
    if low > high:
        raise SpecError(
            "InvalidRange",
            f"{reader.field(low_key)} ({low:g}) must not exceed {reader.field(high_key)}"
            f" ({high:g}): {what}",
            field=reader.field(low_key),
        )


def _image(reader: _Reader) -> str:
    image = reader.string("image")
    if not image or any(ch.isspace() for ch in image) or len(image) > IMAGE_MAX_LENGTH:
        raise SpecError(
            "InvalidValue",
            f"spec.image: must be an image reference of 1 to {IMAGE_MAX_LENGTH} characters"
            " without spaces",
            field="spec.image",
        )
    return image


def _labels(reader: _Reader, key: str) -> Mapping[str, str]:
    field = reader.field(key)
    labels = reader.data[key]
    if not isinstance(labels, Mapping):
        raise SpecError(
            "InvalidType", f"{field}: expected an object, got {_kind(labels)}", field=field
        )
    if len(labels) > MAX_MONITORING_LABELS:
        raise SpecError(
            "OutOfRange", f"{field}: at most {MAX_MONITORING_LABELS} labels", field=field
        )
    checked: dict[str, str] = {}
    for name, value in labels.items():
        here = f"{field}[{name!r}]"
        if not isinstance(name, str) or not _LABEL_KEY_RE.match(name):
            raise SpecError(
                "InvalidLabel", f"{here}: not a valid Kubernetes label key", field=field
            )
        prefix, _, short = name.rpartition("/")
        if len(short) > 63 or len(prefix) > 253:
            raise SpecError(
                "InvalidLabel",
                f"{here}: label key too long (name at most 63, prefix at most 253 characters)",
                field=field,
            )
        if not isinstance(value, str):
            raise SpecError(
                "InvalidLabel", f"{here}: value must be a string, got {_kind(value)}", field=field
            )
        if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            raise SpecError(
                "InvalidLabel",
                f"{here}: {value!r} is not a valid label value (at most 63 of A-Z a-z 0-9 - _ .,"
                " alphanumeric at both ends)",
                field=field,
            )
        checked[name] = value
    return MappingProxyType(checked)


def _window(reader: _Reader, scrape: _Duration, *, alert: str) -> _Duration:
    window = reader.duration("window")
    if window.seconds < 2 * scrape.seconds:
        raise SpecError(
            "WindowTooShort",
            f"{reader.field('window')} ({window.text}) must be at least twice"
            f" spec.monitoring.scrapeInterval ({scrape.text}): {alert} uses rate()/increase(),"
            " which need two samples in the window",
            field=reader.field("window"),
        )
    return window


def parse_spec(spec: Mapping[str, Any] | None) -> PromDemoSpec:
    """Default, validate and type a PromDemo spec; raises SpecError on the first problem."""
    top = _Reader(apply_defaults(spec), "spec", DEFAULTS)

    replicas = top.integer("replicas")
    image = _image(top)
    image_pull_policy = top.string("imagePullPolicy", IMAGE_PULL_POLICIES)

    app_r = top.child("app")
    sim_r = app_r.child("simulation")
    simulation = SimulationSpec(
        enabled=sim_r.boolean("enabled"),
        dependency_min_seconds=sim_r.number("dependencyMinSeconds"),
        dependency_max_seconds=sim_r.number("dependencyMaxSeconds"),
        dependency_failure_rate=sim_r.number("dependencyFailureRate"),
        processing_min_seconds=sim_r.number("processingMinSeconds"),
        processing_max_seconds=sim_r.number("processingMaxSeconds"),
    )
    _ordered(
        sim_r,
        "dependencyMinSeconds",
        simulation.dependency_min_seconds,
        "dependencyMaxSeconds",
        simulation.dependency_max_seconds,
        what="the dependency call sleeps uniformly between them",
    )
    _ordered(
        sim_r,
        "processingMinSeconds",
        simulation.processing_min_seconds,
        "processingMaxSeconds",
        simulation.processing_max_seconds,
        what="processing sleeps uniformly between them",
    )
    app = AppSpec(
        initial_inventory=app_r.integer("initialInventory"),
        oversell=app_r.boolean("oversell"),
        simulation=simulation,
    )

    heal_r = top.child("autoHeal")
    auto_heal = AutoHealSpec(
        enabled=heal_r.boolean("enabled"),
        source=heal_r.string("source", HEAL_SOURCES),
        threshold=heal_r.integer("threshold"),
        interval_seconds=heal_r.duration("interval").seconds,
        for_seconds=heal_r.duration("for").seconds,
        cooldown_seconds=heal_r.duration("cooldown").seconds,
        pod_access=heal_r.string("podAccess", POD_ACCESS_MODES),
    )

    mon_r = top.child("monitoring")
    scrape = mon_r.duration("scrapeInterval")
    labels = _labels(mon_r, "labels")
    alerts_r = mon_r.child("alerts")
    inv_r = alerts_r.child("inventoryNegative")
    nso_r = alerts_r.child("noSuccessOrders")
    lat_r = alerts_r.child("highLatencyP95")
    low_r = alerts_r.child("lowSuccessRate")
    dep_r = alerts_r.child("dependencyErrors")
    inv_for = inv_r.duration("for")
    nso_window, nso_for = _window(nso_r, scrape, alert="NoSuccessOrders"), nso_r.duration("for")
    lat_window, lat_for = _window(lat_r, scrape, alert="HighLatencyP95"), lat_r.duration("for")
    low_window, low_for = _window(low_r, scrape, alert="LowSuccessRate"), low_r.duration("for")
    dep_window, dep_for = _window(dep_r, scrape, alert="DependencyErrors"), dep_r.duration("for")
    alerts = AlertsSpec(
        inventory_negative=InventoryNegativeAlert(
            for_duration=inv_for.text, for_seconds=inv_for.seconds
        ),
        no_success_orders=NoSuccessOrdersAlert(
            min_orders=nso_r.integer("minOrders"),
            window=nso_window.text,
            window_seconds=nso_window.seconds,
            for_duration=nso_for.text,
            for_seconds=nso_for.seconds,
        ),
        high_latency_p95=HighLatencyP95Alert(
            threshold_seconds=lat_r.number("thresholdSeconds"),
            window=lat_window.text,
            window_seconds=lat_window.seconds,
            for_duration=lat_for.text,
            for_seconds=lat_for.seconds,
        ),
        low_success_rate=LowSuccessRateAlert(
            threshold=low_r.number("threshold"),
            window=low_window.text,
            window_seconds=low_window.seconds,
            for_duration=low_for.text,
            for_seconds=low_for.seconds,
        ),
        dependency_errors=DependencyErrorsAlert(
            rate_per_second=dep_r.number("ratePerSecond"),
            window=dep_window.text,
            window_seconds=dep_window.seconds,
            for_duration=dep_for.text,
            for_seconds=dep_for.seconds,
        ),
    )
    monitoring = MonitoringSpec(
        service_monitor=mon_r.boolean("serviceMonitor"),
        prometheus_rule=mon_r.boolean("prometheusRule"),
        scrape_interval=scrape.text,
        scrape_interval_seconds=scrape.seconds,
        labels=labels,
        alerts=alerts,
        match_prometheus=mon_r.string("matchPrometheus", MATCH_PROMETHEUS_MODES),
    )

    return PromDemoSpec(
        replicas=replicas,
        image=image,
        image_pull_policy=image_pull_policy,
        app=app,
        auto_heal=auto_heal,
        monitoring=monitoring,
    )
