"""The PromDemo spec: its defaults, its validation and its typed form.

`apply_defaults(spec)` fills every missing field with the same default the
CRD's schema sets (`crds/promdemos.promdemo.dev.yaml`; a unit test keeps the
two equal), so a spec read from a file (`promdemo render`, `promdemo local`)
means the same as one the API server has defaulted.

`parse_spec(spec)` defaults, then validates, then returns frozen dataclasses.
It checks what the schema checks (types, ranges, enums, the duration pattern)
because a file never went through an API server, and what a schema cannot
express: min <= max pairs, durations Prometheus would refuse (`30s1m`), alert
windows too short for `rate()` at the scrape interval, label keys. A problem is
a `SpecError(reason, message)`; the message is one line that names the field.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from types import MappingProxyType
from typing import Any

from promdemo_operator.duration import DURATION_PATTERN, DurationError, parse_duration

__all__ = [
    "DEFAULTS",
    "DURATION_PATTERN",
    "AlertsSpec",
    "AppSpec",
    "AutoHealSpec",
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

REPLICAS_MAX = 50
INVENTORY_MAX = 1_000_000
THRESHOLD_LIMIT = 1_000_000
SIMULATION_SECONDS_MAX = 60.0

IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
HEAL_SOURCES = ("direct", "alertmanager")
POD_ACCESS_MODES = ("auto", "podIP", "apiProxy")

#: The full default spec (docs/architecture.md is binding). Read-only use: copy it.
DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "image": "promdemo:0.1.0",
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
        "alerts": {
            "inventoryNegative": {"for": "0s"},
            "noSuccessOrders": {"minOrders": 100, "window": "30m", "for": "5m"},
            "highLatencyP95": {"thresholdSeconds": 1, "window": "5m", "for": "5m"},
            "lowSuccessRate": {"threshold": 0.9, "window": "5m", "for": "5m"},
            "dependencyErrors": {"ratePerSecond": 0.2, "window": "5m", "for": "5m"},
        },
    },
}

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


@dataclass(frozen=True)
class SimulationSpec:
    """spec.app.simulation: the simulated dependency and processing (seconds)."""

    enabled: bool
    dependency_min_seconds: float
    dependency_max_seconds: float
    dependency_failure_rate: float
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
    """spec.autoHeal; durations in seconds (`interval`/`for` as in Prometheus)."""

    enabled: bool
    source: str  # direct | alertmanager
    threshold: int  # reset a pod when its inventory < threshold
    interval_seconds: float
    for_seconds: float
    cooldown_seconds: float
    pod_access: str  # auto | podIP | apiProxy


@dataclass(frozen=True)
class InventoryNegativeAlert:
    for_: str


@dataclass(frozen=True)
class NoSuccessOrdersAlert:
    min_orders: int
    window: str
    for_: str


@dataclass(frozen=True)
class HighLatencyP95Alert:
    threshold_seconds: float
    window: str
    for_: str


@dataclass(frozen=True)
class LowSuccessRateAlert:
    threshold: float
    window: str
    for_: str


@dataclass(frozen=True)
class DependencyErrorsAlert:
    rate_per_second: float
    window: str
    for_: str


@dataclass(frozen=True)
class AlertsSpec:
    """spec.monitoring.alerts; durations stay Prometheus duration strings (validated)."""

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
    scrape_interval: str  # Prometheus duration, as written
    scrape_interval_seconds: float
    labels: Mapping[str, str]  # read-only
    alerts: AlertsSpec


@dataclass(frozen=True)
class PromDemoSpec:
    """A validated, defaulted PromDemo spec. `raw` is the defaulted dict it came from."""

    replicas: int
    image: str
    image_pull_policy: str
    app: AppSpec
    auto_heal: AutoHealSpec
    monitoring: MonitoringSpec
    raw: Mapping[str, Any] = dataclass_field(compare=False, repr=False)


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

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.data[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type(key, "an integer")
        self._range(key, value, low, high)
        return value

    def number(self, key: str, low: float, high: float | None = None) -> float:
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._type(key, "a number")
        self._range(key, value, low, high)
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

    def duration(self, key: str, *, positive: bool = False) -> tuple[str, float]:
        value = self.data[key]
        if not isinstance(value, str):
            raise self._type(key, "a duration string such as 30s")
        try:
            seconds = parse_duration(value, field=self.field(key))
        except DurationError as exc:
            raise SpecError("InvalidDuration", exc.message, field=exc.field) from None
        if positive and seconds <= 0:
            raise SpecError(
                "InvalidDuration",
                f"{self.field(key)}: must be longer than 0s",
                field=self.field(key),
            )
        return value, seconds

    def _type(self, key: str, expected: str) -> SpecError:
        got = _kind(self.data[key])
        return SpecError(
            "InvalidType",
            f"{self.field(key)}: expected {expected}, got {got}",
            field=self.field(key),
        )

    def _range(self, key: str, value: float, low: float, high: float | None) -> None:
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise SpecError(
                "OutOfRange", f"{self.field(key)}: {value} must be {bounds}", field=self.field(key)
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


def _window(reader: _Reader, scrape: tuple[str, float], *, alert: str) -> str:
    text, seconds = reader.duration("window", positive=True)
    if seconds < 2 * scrape[1]:
        raise SpecError(
            "WindowTooShort",
            f"{reader.field('window')} ({text}) must be at least twice"
            f" spec.monitoring.scrapeInterval ({scrape[0]}): {alert} uses rate()/increase(),"
            " which need two samples in the window",
            field=reader.field("window"),
        )
    return text


def parse_spec(spec: Mapping[str, Any] | None) -> PromDemoSpec:
    """Default, validate and type a PromDemo spec; raises SpecError on the first problem."""
    raw = apply_defaults(spec)
    top = _Reader(raw, "spec", DEFAULTS)

    replicas = top.integer("replicas", 0, REPLICAS_MAX)
    image = top.string("image")
    if not image.strip() or any(ch.isspace() for ch in image):
        raise SpecError(
            "InvalidValue", "spec.image: must be a non-empty image reference", field="spec.image"
        )
    image_pull_policy = top.string("imagePullPolicy", IMAGE_PULL_POLICIES)

    app_r = top.child("app")
    sim_r = app_r.child("simulation")
    limit = SIMULATION_SECONDS_MAX
    simulation = SimulationSpec(
        enabled=sim_r.boolean("enabled"),
        dependency_min_seconds=sim_r.number("dependencyMinSeconds", 0, limit),
        dependency_max_seconds=sim_r.number("dependencyMaxSeconds", 0, limit),
        dependency_failure_rate=sim_r.number("dependencyFailureRate", 0, 1),
        processing_min_seconds=sim_r.number("processingMinSeconds", 0, limit),
        processing_max_seconds=sim_r.number("processingMaxSeconds", 0, limit),
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
        initial_inventory=app_r.integer("initialInventory", 0, INVENTORY_MAX),
        oversell=app_r.boolean("oversell"),
        simulation=simulation,
    )

    heal_r = top.child("autoHeal")
    auto_heal = AutoHealSpec(
        enabled=heal_r.boolean("enabled"),
        source=heal_r.string("source", HEAL_SOURCES),
        threshold=heal_r.integer("threshold", -THRESHOLD_LIMIT, THRESHOLD_LIMIT),
        interval_seconds=heal_r.duration("interval", positive=True)[1],
        for_seconds=heal_r.duration("for")[1],
        cooldown_seconds=heal_r.duration("cooldown")[1],
        pod_access=heal_r.string("podAccess", POD_ACCESS_MODES),
    )

    mon_r = top.child("monitoring")
    scrape = mon_r.duration("scrapeInterval", positive=True)
    labels = _labels(mon_r, "labels")
    alerts_r = mon_r.child("alerts")
    inv_r = alerts_r.child("inventoryNegative")
    nso_r = alerts_r.child("noSuccessOrders")
    lat_r = alerts_r.child("highLatencyP95")
    low_r = alerts_r.child("lowSuccessRate")
    dep_r = alerts_r.child("dependencyErrors")
    alerts = AlertsSpec(
        inventory_negative=InventoryNegativeAlert(for_=inv_r.duration("for")[0]),
        no_success_orders=NoSuccessOrdersAlert(
            min_orders=nso_r.integer("minOrders", 0, 1_000_000_000),
            window=_window(nso_r, scrape, alert="NoSuccessOrders"),
            for_=nso_r.duration("for")[0],
        ),
        high_latency_p95=HighLatencyP95Alert(
            threshold_seconds=lat_r.number("thresholdSeconds", 0.001, 3600),
            window=_window(lat_r, scrape, alert="HighLatencyP95"),
            for_=lat_r.duration("for")[0],
        ),
        low_success_rate=LowSuccessRateAlert(
            threshold=low_r.number("threshold", 0, 1),
            window=_window(low_r, scrape, alert="LowSuccessRate"),
            for_=low_r.duration("for")[0],
        ),
        dependency_errors=DependencyErrorsAlert(
            rate_per_second=dep_r.number("ratePerSecond", 0),
            window=_window(dep_r, scrape, alert="DependencyErrors"),
            for_=dep_r.duration("for")[0],
        ),
    )
    monitoring = MonitoringSpec(
        service_monitor=mon_r.boolean("serviceMonitor"),
        prometheus_rule=mon_r.boolean("prometheusRule"),
        scrape_interval=scrape[0],
        scrape_interval_seconds=scrape[1],
        labels=labels,
        alerts=alerts,
    )

    return PromDemoSpec(
        replicas=replicas,
        image=image,
        image_pull_policy=image_pull_policy,
        app=app,
        auto_heal=auto_heal,
        monitoring=monitoring,
        raw=MappingProxyType(raw),
    )
