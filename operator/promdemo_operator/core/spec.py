"""The PromDemo spec, written once: its fields, defaults, bounds, rules and typed form.

The frozen dataclasses below are both the typed spec that every renderer
takes and its declaration: each field carries its JSON name, default,
bounds, description and CEL rules (`core/spec_fields.py`), and each object's
docstring is its description in the CRD. From them come

- `DEFAULTS`, `NUMBER_BOUNDS`, `DURATION_BOUNDS` (docs/crd.md says why each
  bound is where it is);
- the CRD's openAPIV3Schema: `make crd` writes `crds/promdemos.promdemo.dev.yaml`
  with `promdemo_operator.core.crd`, and a unit test fails when the committed file
  differs;
- `parse_spec(spec)`: defaults, then validates, then returns the dataclasses.
  It checks everything the schema checks, because a file never went through an
  API server (and an older one skips CEL rules), and what a schema cannot
  express: durations Prometheus would refuse (`30s1m`), label keys, min <= max
  pairs. A problem is a `SpecError(reason, message)`; the message is one line
  that names the field.

`apply_defaults(spec)` fills every missing field with its default, as the API
server does with the CRD's, so a spec read from a file (`promdemo render`,
`promdemo local`) means the same as one the API server has defaulted.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from promdemo_operator.core.duration import DurationError, format_seconds, parse_duration
from promdemo_operator.core.spec_fields import (
    Boolean,
    Bounds,
    Choice,
    Declaration,
    Duration,
    Integer,
    LabelMap,
    Nested,
    Number,
    Rule,
    Seconds,
    Text,
    declarations,
    declared,
    defaults_of,
    known_names,
    nested_class,
    walk,
)

__all__ = [
    "DEFAULTS",
    "DURATION_BOUNDS",
    "NUMBER_BOUNDS",
    "SPEC",
    "AlertTiming",
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

_DAY_SECONDS = 86_400.0
_SIMULATION = Bounds(0, 60)
_ALERT_FOR = Bounds(0, _DAY_SECONDS)
_ALERT_WINDOW = Bounds(2, _DAY_SECONDS)  # floor: two scrapes at the scrapeInterval floor
_ALERT_FOR_TEXT = "How long the condition must hold before the alert fires ({bounds})."


class SpecError(ValueError):
    """A spec the operator cannot run. `reason` is a CamelCase word, `message` one line."""

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------- rules between fields


@dataclass(frozen=True)
class _Ordered:
    """`low` must not exceed `high` (two numbers of one object); the operator checks it."""

    low: str
    high: str
    what: str

    def rules(self) -> tuple[Rule, ...]:
        return ()

    def check(self, data: Mapping[str, Any], path: str) -> None:
        low, high = data[self.low], data[self.high]
        if low > high:
            raise SpecError(
                "InvalidRange",
                f"{path}.{self.low} ({low:g}) must not exceed {path}.{self.high} ({high:g}):"
                f" {self.what}",
                field=f"{path}.{self.low}",
            )


@dataclass(frozen=True)
class _TwoScrapes:
    """An alert's window holds at least two scrapes: `function` needs two samples in it.

    The CEL rule sits on spec.monitoring, the nearest object that sees both fields;
    CEL rules run after defaulting, so in a PromDemo the window and the scrape
    interval are there. kube-apiserver also checks the field's own `default: {}`
    against its rules, before the nested defaults apply: hence the has() guards
    (without them kube-apiserver 1.37 refuses the CRD).
    """

    alert: str
    function: str

    def rules(self) -> tuple[Rule, ...]:
        window = f"alerts.{self.alert}.window"
        return (
            Rule(
                f"!has(self.scrapeInterval) || !has(self.alerts) ||"
                f" !has(self.alerts.{self.alert}) || !has(self.{window}) ||"
                f" duration(self.{window}) >="
                " duration(self.scrapeInterval) + duration(self.scrapeInterval)",
                f"{window} must be at least twice scrapeInterval:"
                f" {self.function} needs two samples in the window",
            ),
        )

    def check(self, data: Mapping[str, Any], path: str) -> None:
        scrape, window = data["scrapeInterval"], data["alerts"][self.alert]["window"]
        if parse_duration(window) < 2 * parse_duration(scrape):
            field = f"{path}.alerts.{self.alert}.window"
            raise SpecError(
                "WindowTooShort",
                f"{field} ({window}) must be at least twice {path}.scrapeInterval ({scrape}):"
                f" {self.function} needs two samples in the window",
                field=field,
            )


# --------------------------------------------------------------------------- the spec
# A duration field keeps the text the user wrote (what goes into Prometheus YAML,
# as written); a `Seconds` attribute beside it holds its value in seconds (what
# Python code computes with).


@dataclass(frozen=True)
class SimulationSpec:
    """The simulated dependency call and order processing (sleeps and failures) that give
    the latency histograms something to show."""

    enabled: bool = declared(
        Boolean(
            name="enabled",
            default=True,
            description="false turns every sleep and simulated failure off"
            " (PROMDEMO_SIMULATION=off).",
        )
    )
    dependency_min_seconds: float = declared(
        Number(
            name="dependencyMinSeconds",
            default=0.05,
            bounds=_SIMULATION,
            description="Shortest simulated dependency call, in seconds; must not exceed"
            " dependencyMaxSeconds (PROMDEMO_DEPENDENCY_MIN_SECONDS).",
        )
    )
    dependency_max_seconds: float = declared(
        Number(
            name="dependencyMaxSeconds",
            default=1.5,
            bounds=_SIMULATION,
            description="Longest simulated dependency call, in seconds; the call sleeps"
            " uniformly between min and max (PROMDEMO_DEPENDENCY_MAX_SECONDS).",
        )
    )
    dependency_failure_rate: float = declared(
        Number(
            name="dependencyFailureRate",
            default=0.1,
            bounds=Bounds(0, 1),
            description="Share of dependency calls that fail (the order answers 502 and"
            " dependency_errors_total grows), {bounds} (PROMDEMO_DEPENDENCY_FAILURE_RATE).",
        )
    )
    processing_min_seconds: float = declared(
        Number(
            name="processingMinSeconds",
            default=0.1,
            bounds=_SIMULATION,
            description="Shortest simulated processing after the dependency call, in seconds;"
            " must not exceed processingMaxSeconds (PROMDEMO_PROCESSING_MIN_SECONDS).",
        )
    )
    processing_max_seconds: float = declared(
        Number(
            name="processingMaxSeconds",
            default=0.5,
            bounds=_SIMULATION,
            description="Longest simulated processing, in seconds. The stock check and the"
            " decrement are this far apart: the oversell window"
            " (PROMDEMO_PROCESSING_MAX_SECONDS).",
        )
    )


@dataclass(frozen=True)
class AppSpec:
    """The order service's behaviour, passed to it as PROMDEMO_* environment variables."""

    initial_inventory: int = declared(
        Integer(
            name="initialInventory",
            default=100,
            bounds=Bounds(0, 1_000_000),
            description="Stock each pod starts with, and what POST /inventory/reset restores"
            " (PROMDEMO_INITIAL_INVENTORY).",
        )
    )
    oversell: bool = declared(
        Boolean(
            name="oversell",
            default=True,
            description="true keeps the Flask practice demo's check-then-act race, so concurrent"
            " orders drive product_inventory below zero; false reserves stock atomically"
            " and it never goes negative (PROMDEMO_OVERSELL).",
        )
    )
    simulation: SimulationSpec = declared(
        Nested(
            name="simulation",
            checks=(
                _Ordered(
                    "dependencyMinSeconds",
                    "dependencyMaxSeconds",
                    "the dependency call sleeps uniformly between them",
                ),
                _Ordered(
                    "processingMinSeconds",
                    "processingMaxSeconds",
                    "processing sleeps uniformly between them",
                ),
            ),
        )
    )


@dataclass(frozen=True)
class AutoHealSpec:
    """Automatic healing: the operator resets the inventory of a pod whose product_inventory
    stays below the threshold, one pod at a time."""

    enabled: bool = declared(
        Boolean(
            name="enabled",
            default=True,
            description="false leaves negative inventories for you to reset by hand.",
        )
    )
    source: str = declared(
        Choice(
            name="source",
            choices=("direct", "alertmanager"),
            default="direct",
            description="direct: the operator scrapes each pod's /metrics every interval."
            " alertmanager: it heals when Alertmanager posts the InventoryNegative alert to"
            " the operator's webhook (port 8082, /alertmanager).",
        )
    )
    threshold: int = declared(
        Integer(
            name="threshold",
            default=0,
            bounds=Bounds(-1_000_000, 1_000_000),
            description="A pod is unhealthy while its inventory is below this value.",
        )
    )
    interval: str = declared(
        Duration(
            name="interval",
            default="5s",
            bounds=Bounds(1, 3600),
            description="How often the inventories are checked, like Prometheus's"
            " evaluation_interval (a duration such as 5s or 1m30s; {bounds}).",
        )
    )
    interval_seconds: float = declared(Seconds("interval"))
    for_duration: str = declared(
        Duration(
            name="for",
            default="0s",
            bounds=Bounds(0, _DAY_SECONDS),
            description="How long a pod must stay below the threshold, at every check,"
            " before it is reset, like an alert's `for` ({bounds}; 0s: at the first check"
            " that sees it).",
        )
    )
    for_seconds: float = declared(Seconds("for_duration"))
    cooldown: str = declared(
        Duration(
            name="cooldown",
            default="30s",
            bounds=Bounds(0, _DAY_SECONDS),
            description="The same pod is never reset twice within this duration ({bounds}).",
        )
    )
    cooldown_seconds: float = declared(Seconds("cooldown"))
    pod_access: str = declared(
        Choice(
            name="podAccess",
            choices=("auto", "podIP", "apiProxy"),
            default="auto",
            description="How the operator reaches a pod: podIP (directly, in-cluster),"
            " apiProxy (through the API server's pod proxy, e.g. an operator run outside"
            " the cluster) or auto (podIP in a cluster, apiProxy outside).",
        )
    )


def _alert_for(default: str, description: str) -> Any:
    return declared(
        Duration(name="for", default=default, bounds=_ALERT_FOR, description=description)
    )


def _alert_window(default: str, description: str) -> Any:
    return declared(
        Duration(name="window", default=default, bounds=_ALERT_WINDOW, description=description)
    )


class AlertTiming:
    """The timing fields every alert shares, declared once: `for` (how long the condition
    must hold at every evaluation before the alert fires) and, for an alert over a range,
    `window` (the range of its rate() or increase()), each with its seconds beside it.

    An alert class gives its own values as class arguments and declares only the fields
    particular to it; the timing fields follow them (the CRD lists them in that order)::

        @dataclass(frozen=True)
        class LowSuccessRateAlert(AlertTiming, window="5m", function="rate()", over="..."):
            threshold: float = declared(Number(...))

    `window=None` (the default): an alert over an instant value, with `for` alone.
    """

    # Set on each alert class by __init_subclass__ (InventoryNegative has no window).
    window: str
    window_seconds: float
    for_duration: str
    for_seconds: float
    #: The range function over `window` ("rate()", "increase()"); None without a window.
    window_function: ClassVar[str | None] = None

    def __init_subclass__(
        cls,
        *,
        window: str | None = None,
        function: str = "",
        over: str = "",
        for_default: str = "5m",
        for_text: str = _ALERT_FOR_TEXT,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        # Runs before @dataclass reads the class: the timing fields are added to the
        # class's own annotations and defaults, after the fields its body declares.
        timing: dict[str, tuple[str, Any]] = {}
        if window is not None:
            over_text = f" over {over}" if over else ""
            description = f"The range of {function}{over_text} ({{bounds}})."
            timing["window"] = ("str", _alert_window(window, description))
            timing["window_seconds"] = ("float", declared(Seconds("window")))
            cls.window_function = function
        timing["for_duration"] = ("str", _alert_for(for_default, for_text))
        timing["for_seconds"] = ("float", declared(Seconds("for_duration")))
        annotations = dict(inspect.get_annotations(cls))
        for name, (annotation, default) in timing.items():
            annotations[name] = annotation
            setattr(cls, name, default)
        cls.__annotations__ = annotations


@dataclass(frozen=True)
class InventoryNegativeAlert(
    AlertTiming,
    for_default="0s",
    for_text="How long the inventory must stay negative before the alert fires ({bounds}).",
):
    """InventoryNegative fires while a pod's product_inventory is below 0."""


@dataclass(frozen=True)
class NoSuccessOrdersAlert(AlertTiming, window="30m", function="increase()"):
    """NoSuccessOrders, the alert-timing article's alert:
    increase(orders_total{result="success"}[window]) < minOrders."""

    min_orders: int = declared(
        Integer(
            name="minOrders",
            default=100,
            bounds=Bounds(0, 1_000_000_000),
            description="Fewest successful orders expected within the window.",
        )
    )


@dataclass(frozen=True)
class HighLatencyP95Alert(
    AlertTiming, window="5m", function="rate()", over="the histogram buckets"
):
    """HighLatencyP95: histogram_quantile(0.95, ...) of http_request_latency_seconds above
    the threshold."""

    threshold_seconds: float = declared(
        Number(
            name="thresholdSeconds",
            default=1,
            bounds=Bounds(0.001, 3600),
            description="The p95 latency, in seconds, above which the alert fires.",
        )
    )


@dataclass(frozen=True)
class LowSuccessRateAlert(AlertTiming, window="5m", function="rate()", over="orders_total"):
    """LowSuccessRate, the share of successful orders below the threshold."""

    threshold: float = declared(
        Number(
            name="threshold",
            default=0.9,
            bounds=Bounds(0, 1),
            description="The success ratio ({bounds}) below which the alert fires.",
        )
    )


@dataclass(frozen=True)
class DependencyErrorsAlert(
    AlertTiming, window="5m", function="rate()", over="dependency_errors_total"
):
    """DependencyErrors, the rate of failed dependency calls above the threshold."""

    rate_per_second: float = declared(
        Number(
            name="ratePerSecond",
            default=0.2,
            bounds=Bounds(0, 1_000_000),
            description="Failed dependency calls per second above which the alert fires"
            " ({bounds}).",
        )
    )


@dataclass(frozen=True)
class AlertsSpec:
    """Thresholds of the alerts in the PrometheusRule. `window` is the range of
    rate()/increase(); `for` is how long the condition must hold at every evaluation
    before the alert fires."""

    inventory_negative: InventoryNegativeAlert = declared(Nested(name="inventoryNegative"))
    no_success_orders: NoSuccessOrdersAlert = declared(Nested(name="noSuccessOrders"))
    high_latency_p95: HighLatencyP95Alert = declared(Nested(name="highLatencyP95"))
    low_success_rate: LowSuccessRateAlert = declared(Nested(name="lowSuccessRate"))
    dependency_errors: DependencyErrorsAlert = declared(Nested(name="dependencyErrors"))


def _window_checks() -> tuple[_TwoScrapes, ...]:
    """A window of at least two scrapes, for every alert over a range (in AlertsSpec's order)."""
    checks = []
    for item, declaration in declarations(AlertsSpec):
        function = nested_class(AlertsSpec, item.name).window_function
        if function is not None:
            checks.append(_TwoScrapes(declaration.name, function))
    return tuple(checks)


@dataclass(frozen=True)
class MonitoringSpec:
    """What the operator creates for prometheus-operator (kube-prometheus-stack). Without
    the monitoring.coreos.com CRDs the app still runs and the MonitoringReady condition
    says why."""

    service_monitor: bool = declared(
        Boolean(
            name="serviceMonitor",
            default=True,
            description="Create a ServiceMonitor that scrapes every pod's /metrics.",
        )
    )
    prometheus_rule: bool = declared(
        Boolean(
            name="prometheusRule",
            default=True,
            description="Create a PrometheusRule with the lessons' recording rules and alerts.",
        )
    )
    scrape_interval: str = declared(
        Duration(
            name="scrapeInterval",
            default="15s",
            bounds=Bounds(1, 120),
            description="The ServiceMonitor's scrape interval, {bounds}. Every alert window"
            " must be at least twice as long (rate() needs two samples).",
        )
    )
    scrape_interval_seconds: float = declared(Seconds("scrape_interval"))
    labels: Mapping[str, str] = declared(  # read-only
        LabelMap(
            name="labels",
            max_labels=20,
            value_pattern=LABEL_VALUE_PATTERN,
            description="Extra labels on the ServiceMonitor and PrometheusRule, e.g."
            " {release: prometheus}, which kube-prometheus-stack's default selectors"
            " require. Keys must be valid Kubernetes label keys (the operator checks them"
            " and reports SpecValid=False otherwise).",
        )
    )
    #: "off", or "auto": the operator adds the labels a Prometheus needs to select the objects.
    match_prometheus: str = declared(
        Choice(
            name="matchPrometheus",
            choices=("off", "auto"),
            default="off",
            description="off: the ServiceMonitor and PrometheusRule carry"
            " spec.monitoring.labels only. auto: the operator also adds the labels that the"
            " one Prometheus object able to select them needs (e.g. release: prometheus for"
            " kube-prometheus-stack), never changing a label set in spec.monitoring.labels;"
            " when several Prometheus objects need different labels, or none can be"
            " satisfied by labels, it adds nothing and the PrometheusSelected condition says"
            " why.",
        )
    )
    alerts: AlertsSpec = declared(Nested(name="alerts"))


@dataclass(frozen=True)
class PromDemoSpec:
    """The desired demo: how many pods, which image, the app's knobs, automatic healing
    and monitoring. Every field is optional and defaulted."""

    replicas: int = declared(
        Integer(
            name="replicas",
            default=1,
            bounds=Bounds(0, 50),
            format="int32",  # the scale subresource's specReplicasPath
            description="Number of order-service pods ({bounds}). Each pod holds its own"
            " inventory; `kubectl scale pd/NAME --replicas=N` sets this field.",
        )
    )
    image: str = declared(
        Text(
            name="image",
            default="ghcr.io/promdemo/promdemo:0.1.0",
            min_length=1,
            max_length=512,
            pattern=r"^\S+$",
            what="an image reference",
            pattern_text="without spaces",
            description="The order-service container image (what `make image` builds).",
        )
    )
    image_pull_policy: str = declared(
        Choice(
            name="imagePullPolicy",
            choices=("Always", "IfNotPresent", "Never"),
            default="IfNotPresent",
            description="When the kubelet pulls the image: Always, IfNotPresent or Never (use"
            " Never or IfNotPresent with `kind load docker-image`).",
        )
    )
    app: AppSpec = declared(Nested(name="app"))
    auto_heal: AutoHealSpec = declared(Nested(name="autoHeal"))
    monitoring: MonitoringSpec = declared(
        Nested(
            name="monitoring",
            checks=_window_checks(),
        )
    )


#: The declaration of `spec` itself (the CRD's `.spec`; its fields are PromDemoSpec's).
SPEC = Nested(name="spec")

#: The full default spec. Read-only use: copy it.
DEFAULTS: dict[str, Any] = defaults_of(PromDemoSpec)

#: Floor and ceiling of every numeric field, by path (`spec.replicas`).
NUMBER_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {p: d.bounds for p, d in walk(PromDemoSpec, "spec") if isinstance(d, Integer | Number)}
)

#: Floor and ceiling, in seconds, of every duration field. Alert windows must also span
#: two scrapes.
DURATION_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {p: d.bounds for p, d in walk(PromDemoSpec, "spec") if isinstance(d, Duration)}
)

_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)


# --------------------------------------------------------------------------- defaults


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    merged: dict[str, Any] = {}
    for key, value in given.items():
        merged[key] = copy.deepcopy(value)
    for key, default in defaults.items():
        if key not in merged or merged[key] is None:
            merged[key] = copy.deepcopy(default)
        elif isinstance(default, Mapping) and isinstance(merged[key], Mapping):
            # An object's defaults apply inside it; a label map's default is empty.
            merged[key] = _merge(default, merged[key])
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
    return _merge(DEFAULTS, spec)


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


class _Reader:
    """Reads one object of the spec, declared by dataclass `cls`; every error names the
    full field path."""

    def __init__(self, data: Any, path: str, cls: type) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(
                "InvalidType", f"{path}: expected an object, got {_kind(data)}", field=path
            )
        fields = known_names(cls)
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

    def read(self, declaration: Declaration) -> Any:
        """The value of the field `declaration` declares, checked as it says."""
        key = declaration.name
        match declaration:
            case Boolean():
                return self.boolean(key)
            case Integer():
                return self.integer(key, declaration.bounds)
            case Number():
                return self.number(key, declaration.bounds)
            case Choice():
                return self.choice(key, declaration.choices)
            case Duration():
                return self.duration(key, declaration.bounds)
            case Text():
                return self.text(declaration)
            case LabelMap():
                return _labels(self, declaration)
        raise TypeError(f"{self.field(key)}: no reader for {type(declaration).__name__}")

    def boolean(self, key: str) -> bool:
        value = self.data[key]
        if not isinstance(value, bool):
            raise self._type(key, "true or false")
        return value

    def integer(self, key: str, bounds: Bounds) -> int:
        value = self.data[key]
        if isinstance(value, float):
            self._finite(key, value)
            if value.is_integer():  # JSON from some clients says 2.0 for 2
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type(key, "an integer")
        self._range(key, value, bounds)
        return value

    def number(self, key: str, bounds: Bounds) -> float:
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._type(key, "a number")
        if isinstance(value, float):
            self._finite(key, value)
        # The range check comes first: an int too large for a float is out of range
        # (float() of it would raise OverflowError).
        self._range(key, value, bounds)
        return float(value)

    def string(self, key: str) -> str:
        value = self.data[key]
        if not isinstance(value, str):
            raise self._type(key, "a string")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in choices:
            raise SpecError(
                "InvalidValue",
                f"{self.field(key)}: {value!r} is not one of {', '.join(choices)}",
                field=self.field(key),
            )
        return value

    def text(self, declaration: Text) -> str:
        value = self.string(declaration.name)
        # fullmatch: the schema's `$` (Go) never matches before a final newline.
        fits = declaration.min_length <= len(value) <= declaration.max_length
        if not fits or not re.fullmatch(declaration.pattern, value):
            field = self.field(declaration.name)
            raise SpecError(
                "InvalidValue",
                f"{field}: must be {declaration.what} of {declaration.min_length} to"
                f" {declaration.max_length} characters {declaration.pattern_text}",
                field=field,
            )
        return value

    def duration(self, key: str, bounds: Bounds) -> str:
        field = self.field(key)
        value = self.data[key]
        if not isinstance(value, str):
            raise self._type(key, "a duration string such as 30s")
        try:
            seconds = parse_duration(value, field=field)
        except DurationError as exc:
            raise SpecError("InvalidDuration", exc.message, field=exc.field) from None
        if not bounds.low <= seconds <= bounds.high:
            raise SpecError(
                "OutOfRange",
                f"{field}: {value} must be between {format_seconds(bounds.low)}"
                f" and {format_seconds(bounds.high)}",
                field=field,
            )
        return value

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

    def _range(self, key: str, value: float, bounds: Bounds) -> None:
        if not bounds.low <= value <= bounds.high:
            raise SpecError(
                "OutOfRange",
                f"{self.field(key)}: {_show(value)} must be between {_show(bounds.low)}"
                f" and {_show(bounds.high)}",
                field=self.field(key),
            )


def _labels(reader: _Reader, declaration: LabelMap) -> Mapping[str, str]:
    field = reader.field(declaration.name)
    labels = reader.data[declaration.name]
    if not isinstance(labels, Mapping):
        raise SpecError(
            "InvalidType", f"{field}: expected an object, got {_kind(labels)}", field=field
        )
    if len(labels) > declaration.max_labels:
        raise SpecError(
            "OutOfRange", f"{field}: at most {declaration.max_labels} labels", field=field
        )
    checked: dict[str, str] = {}
    for name, value in labels.items():
        here = f"{field}[{name!r}]"
        if not isinstance(name, str) or not _LABEL_KEY_RE.fullmatch(name):
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
        if len(value) > declaration.value_max_length or not _LABEL_VALUE_RE.fullmatch(value):
            raise SpecError(
                "InvalidLabel",
                f"{here}: {value!r} is not a valid label value (at most"
                f" {declaration.value_max_length} of A-Z a-z 0-9 - _ ., alphanumeric at both"
                " ends)",
                field=field,
            )
        checked[name] = value
    return MappingProxyType(checked)


def _build(cls: type, reader: _Reader, declaration: Nested) -> Any:
    """The dataclass `cls` from the object `reader` holds: each field read as declared,
    then the object's checks (which see every field of it, read)."""
    values: dict[str, Any] = {}
    for item, field_declaration in declarations(cls):
        match field_declaration:
            case Seconds(of=attribute):
                values[item.name] = parse_duration(values[attribute])
            case Nested(name=key):
                child = _Reader(reader.data[key], reader.field(key), nested_class(cls, item.name))
                values[item.name] = _build(nested_class(cls, item.name), child, field_declaration)
            case _:
                values[item.name] = reader.read(field_declaration)
    for check in declaration.checks:
        check.check(reader.data, reader.path)
    return cls(**values)


def parse_spec(spec: Mapping[str, Any] | None) -> PromDemoSpec:
    """Default, validate and type a PromDemo spec; raises SpecError on the first problem."""
    return _build(PromDemoSpec, _Reader(apply_defaults(spec), "spec", PromDemoSpec), SPEC)
