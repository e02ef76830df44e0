"""Which `Prometheus` objects select a PromDemo's ServiceMonitor and PrometheusRule, and the fix.

prometheus-operator (pkg/prometheus/resource_selector.go, pkg/prometheus/server/rules.go,
pkg/operator/operator.go `SelectNamespacesFromCache`) picks the objects of one
Prometheus in two steps, for ServiceMonitors (`serviceMonitorSelector` +
`serviceMonitorNamespaceSelector`) and PrometheusRules (`ruleSelector` +
`ruleNamespaceSelector`) alike:

1. the namespaces: a nil namespace selector means the Prometheus's own
   namespace only; `{}` means every namespace; otherwise the namespaces whose
   labels match;
2. in those namespaces, the objects whose labels match the object selector:
   nil selects nothing, `{}` everything (labelselector.py).

An invalid selector fails the operator's reconcile of that Prometheus where it
is converted, and what comes after is not written (pkg/prometheus/server/operator.go
`sync`): the rule files first (`ruleNamespaceSelector`, `ruleSelector`), then the
configuration, whose scrape jobs need every one of `serviceMonitor*`,
`podMonitor*`, `probe*` and `scrapeConfig*` selectors to convert. So an invalid
rule selector also keeps every ServiceMonitor out (`BLOCKING`), while an invalid
ServiceMonitor selector leaves the rule files written. Found by the differential
test against the real prometheus-operator (tests/cluster/test_selection_differential.py).

`spec.ignoreNamespaceSelectors` does not take part: it only changes
where a selected ServiceMonitor looks for its Services (promdemo's looks in its
own namespace either way). Out of reach offline: the operator's own
`--namespaces` / `--deny-namespaces` flags (which namespaces it watches at all)
and the validation of a selected object (an invalid one is rejected with an Event).

`check(prometheuses, objects, namespaces)` returns a `SelectionReport`: per
Prometheus and object a `Verdict` with a reason and a one-line fix;
`auto_labels(...)` the labels for `spec.monitoring.matchPrometheus: auto`.

Plain Python: no kopf, no kubernetes client.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promdemo_operator.core.names import MONITORING_GROUP, labels_for
from promdemo_operator.prometheus.selection.labelselector import (
    LabelPlan,
    LabelSelector,
    SelectorError,
    format_labels,
)

__all__ = [
    "BLOCKING",
    "KINDS",
    "NAMESPACE_NAME_LABEL",
    "PROMETHEUS_RULE",
    "SELECTOR_FIELDS",
    "SERVICE_MONITOR",
    "AutoLabels",
    "Kind",
    "MonitoringObject",
    "PrometheusError",
    "PrometheusSelectors",
    "PrometheusVerdict",
    "SelectionReport",
    "Verdict",
    "auto_labels",
    "check",
    "decide",
    "namespace_labels",
]

#: The label the API server sets on every namespace (immutable, the namespace's name).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

#: Keys of promdemo's own labels on its children: spec.monitoring.labels cannot change them.
OWN_LABEL_KEYS = frozenset(labels_for("x"))

# Reasons (CamelCase, for a status condition).
SELECTED = "Selected"
NO_SELECTOR = "NoSelector"
INVALID_SELECTOR = "InvalidSelector"
NAMESPACE_NOT_SELECTED = "NamespaceNotSelected"
LABELS_NOT_MATCHED = "LabelsNotMatched"
NO_PROMETHEUS = "NoPrometheus"
SPLIT = "SelectedByDifferentPrometheuses"
NOTHING_TO_SELECT = "NothingToSelect"


@dataclass(frozen=True)
class Kind:
    """A kind a Prometheus selects, and the fields of the Prometheus that select it."""

    kind: str
    plural: str
    selector_field: str
    namespace_selector_field: str


SERVICE_MONITOR = Kind(
    "ServiceMonitor", "ServiceMonitors", "serviceMonitorSelector", "serviceMonitorNamespaceSelector"
)
PROMETHEUS_RULE = Kind("PrometheusRule", "PrometheusRules", "ruleSelector", "ruleNamespaceSelector")
KINDS = {k.kind: k for k in (SERVICE_MONITOR, PROMETHEUS_RULE)}

#: kind -> the other selector fields of a Prometheus that, when invalid, fail the
#: operator's reconcile before it writes what selects that kind (see the module doc).
BLOCKING: dict[str, tuple[str, ...]] = {
    SERVICE_MONITOR.kind: (
        "ruleNamespaceSelector",
        "ruleSelector",
        "podMonitorSelector",
        "podMonitorNamespaceSelector",
        "probeSelector",
        "probeNamespaceSelector",
        "scrapeConfigSelector",
        "scrapeConfigNamespaceSelector",
    ),
    PROMETHEUS_RULE.kind: (),
}

#: Every field of a Prometheus's spec that selection reads.
SELECTOR_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [f for k in KINDS.values() for f in (k.selector_field, k.namespace_selector_field)]
        + [f for fields in BLOCKING.values() for f in fields]
    )
)


class PrometheusError(ValueError):
    """An object that is no usable Prometheus (or monitoring object); one-line message."""


def namespace_labels(namespace: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """`labels` of namespace `namespace` plus the `kubernetes.io/metadata.name` the API sets."""
    return {**(labels or {}), NAMESPACE_NAME_LABEL: namespace}


def _meta(obj: Mapping[str, Any], what: str) -> tuple[str, str, dict[str, str]]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise PrometheusError(f"{what}: no metadata")
    name = meta.get("name")
    namespace = meta.get("namespace")
    if not isinstance(name, str) or not name:
        raise PrometheusError(f"{what}: no metadata.name")
    if not isinstance(namespace, str) or not namespace:
        raise PrometheusError(f"{what} {name!r}: no metadata.namespace")
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise PrometheusError(f"{what} {namespace}/{name}: metadata.labels is not an object")
    return namespace, name, {str(k): str(v) for k, v in labels.items()}


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class MonitoringObject:
    """A ServiceMonitor or PrometheusRule to be selected: its kind, place and labels."""

    kind: Kind
    namespace: str
    name: str
    labels: Mapping[str, str]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> MonitoringObject:
        """From a ServiceMonitor/PrometheusRule manifest (e.g. one of `render_children`)."""
        kind = KINDS.get(str(obj.get("kind")))
        if kind is None or not str(obj.get("apiVersion", "")).startswith(f"{MONITORING_GROUP}/"):
            raise PrometheusError(
                f"{obj.get('kind')!r}: expected a {MONITORING_GROUP} ServiceMonitor or"
                " PrometheusRule"
            )
        namespace, name, labels = _meta(obj, kind.kind)
        return cls(kind, namespace, name, labels)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PrometheusSelectors:
    """The selectors of one Prometheus object, parsed; a SelectorError where one is invalid."""

    namespace: str
    name: str
    selectors: Mapping[str, LabelSelector | SelectorError]
    namespace_selectors: Mapping[str, LabelSelector | SelectorError | None]  # None: own namespace
    #: kind -> (field, error) of the invalid selectors of BLOCKING[kind]
    blockers: Mapping[str, tuple[tuple[str, SelectorError], ...]] = dataclasses.field(
        default_factory=dict
    )

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> PrometheusSelectors:
        """From a `monitoring.coreos.com/v1` Prometheus (a dict, as the API or a file holds it)."""
        if obj.get("kind") != "Prometheus" or not str(obj.get("apiVersion", "")).startswith(
            f"{MONITORING_GROUP}/"
        ):
            raise PrometheusError(
                f"{obj.get('kind')!r}: expected a {MONITORING_GROUP} Prometheus object"
            )
        namespace, name, _ = _meta(obj, "Prometheus")
        spec = obj.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise PrometheusError(f"Prometheus {namespace}/{name}: spec is not an object")
        selectors: dict[str, LabelSelector | SelectorError] = {}
        namespace_selectors: dict[str, LabelSelector | SelectorError | None] = {}
        for kind in KINDS.values():
            selectors[kind.kind] = _parse(spec.get(kind.selector_field), kind.selector_field)
            raw_ns = spec.get(kind.namespace_selector_field)
            namespace_selectors[kind.kind] = (
                None if raw_ns is None else _parse(raw_ns, kind.namespace_selector_field)
            )
        invalid: dict[str, SelectorError] = {}
        for field_name in {f for fields in BLOCKING.values() for f in fields}:
            raw = spec.get(field_name)
            parsed = None if raw is None else _parse(raw, field_name)
            if isinstance(parsed, SelectorError):
                invalid[field_name] = parsed
        blockers = {
            kind: tuple((f, invalid[f]) for f in fields if f in invalid)
            for kind, fields in BLOCKING.items()
        }
        return cls(namespace, name, selectors, namespace_selectors, blockers)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _parse(raw: Any, where: str) -> LabelSelector | SelectorError:
    try:
        return LabelSelector.parse(raw, where=where)
    except SelectorError as exc:
        return exc


# --------------------------------------------------------------------------- one decision


@dataclass(frozen=True)
class Verdict:
    """Whether one Prometheus selects one object; why; and what would make it select it.

    `problems` are clauses whose subject is the Prometheus ("selects ServiceMonitors
    labelled release=kps"). `labels` is the possible change of the object's free
    labels (spec.monitoring.labels); `fixes` are the other fixes (namespace labels,
    a change of the Prometheus). `namespace_plan` is the change of the namespace's
    labels that would admit it, when its namespace selector does not.
    """

    prometheus: str
    kind: str
    object: str
    selected: bool
    reason: str
    problems: tuple[str, ...] = ()
    labels: LabelPlan | None = None
    fixes: tuple[str, ...] = ()
    namespace_plan: LabelPlan | None = None
    #: 0 selected; 1 fixed by spec.monitoring.labels; 2 also needs namespace labels;
    #: 3 needs a change of the Prometheus or of the namespace the object lives in.
    effort: int = 0

    @property
    def message(self) -> str:
        if self.selected:
            return f"Prometheus {self.prometheus} selects {self.kind} {self.object}"
        return f"Prometheus {self.prometheus} " + " and ".join(self.problems)

    @property
    def fix(self) -> str | None:
        parts = list(self.fixes)
        if self.labels is not None and not self.labels.empty:
            parts.insert(0, _labels_fix(self.labels))
        return "; and ".join(parts) or None


def decide(
    prom: PrometheusSelectors,
    obj: MonitoringObject,
    namespace_labels_: Mapping[str, str],
) -> Verdict:
    """Does `prom` select `obj` (in a namespace labelled `namespace_labels_`)? With the fix."""
    kind = obj.kind
    who = f"Prometheus {prom.key}"
    base = {"prometheus": prom.key, "kind": kind.kind, "object": obj.key}
    selector = prom.selectors[kind.kind]
    ns_selector = prom.namespace_selectors[kind.kind]
    invalid = [
        (name, parsed)
        for name, parsed in (
            (kind.selector_field, selector),
            (kind.namespace_selector_field, ns_selector),
        )
        if isinstance(parsed, SelectorError)
    ]
    if not invalid and prom.blockers.get(kind.kind):
        field_name, error = prom.blockers[kind.kind][0]
        return Verdict(
            **base,
            selected=False,
            reason=INVALID_SELECTOR,
            problems=(
                f"has an invalid {field_name} ({error}): prometheus-operator's reconcile of it"
                f" fails before it writes the {kind.plural}' scrape jobs",
            ),
            fixes=(f"correct spec.{field_name} of {who}",),
            effort=3,
        )
    if invalid or not isinstance(selector, LabelSelector):
        field_name, error = invalid[0]
        return Verdict(
            **base,
            selected=False,
            reason=INVALID_SELECTOR,
            problems=(
                f"has an invalid {field_name} ({error}): prometheus-operator cannot reconcile it",
            ),
            fixes=(f"correct spec.{field_name} of {who}",),
            effort=3,
        )
    if selector.nothing:
        return Verdict(
            **base,
            selected=False,
            reason=NO_SELECTOR,
            problems=(f"has no {kind.selector_field}: it selects no {kind.plural}",),
            fixes=(f"set spec.{kind.selector_field} of {who} ({{}} selects every {kind.kind})",),
            effort=3,
        )

    problems: list[str] = []
    fixes: list[str] = []
    effort = 0
    namespace_plan: LabelPlan | None = None
    # 1. the namespaces (SelectNamespacesFromCache)
    if ns_selector is None:
        if obj.namespace != prom.namespace:
            problems.append(
                f"looks for {kind.plural} only in its own namespace {prom.namespace}"
                f" ({kind.namespace_selector_field} is not set)"
            )
            fixes.append(
                f"create the PromDemo in namespace {prom.namespace}, or set"
                f" spec.{kind.namespace_selector_field}: {{}} on {who}"
            )
            effort = 3
    elif isinstance(ns_selector, LabelSelector) and not ns_selector.matches(namespace_labels_):
        namespace_plan = ns_selector.plan(namespace_labels_, fixed=(NAMESPACE_NAME_LABEL,))
        problems.append(
            f"looks for {kind.plural} only in namespaces labelled {ns_selector}"
            f" (namespace {obj.namespace} has {_labels_text(namespace_labels_)})"
        )
        if namespace_plan.possible:
            fixes.append(_namespace_fix(obj.namespace, namespace_plan))
            effort = 2
        else:
            fixes.append(
                f"change spec.{kind.namespace_selector_field} of {who}"
                f" ({'; '.join(namespace_plan.blockers)})"
            )
            effort = 3
    namespace_ok = not problems
    # 2. the object's labels, in the selected namespaces
    label_plan: LabelPlan | None = None
    if not selector.matches(obj.labels):
        plan = selector.plan(obj.labels, fixed=OWN_LABEL_KEYS)
        problems.append(f"selects {kind.plural} labelled {selector}")
        if plan.possible:
            label_plan = plan
            effort = max(effort, 1)
        else:
            fixes.append(f"change spec.{kind.selector_field} of {who} ({'; '.join(plan.blockers)})")
            effort = 3

    if not problems:
        return Verdict(**base, selected=True, reason=SELECTED)
    return Verdict(
        **base,
        selected=False,
        reason=LABELS_NOT_MATCHED if namespace_ok else NAMESPACE_NOT_SELECTED,
        problems=tuple(problems),
        labels=label_plan,
        fixes=tuple(fixes),
        namespace_plan=namespace_plan,
        effort=effort,
    )


def _labels_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return "no labels"
    return "labels " + ",".join(f"{k}={v}" for k, v in labels.items())


def _labels_fix(plan: LabelPlan) -> str:
    parts = []
    if plan.add:
        parts.append(f"add spec.monitoring.labels: {format_labels(plan.add)}")
    if plan.remove:
        parts.append("remove " + ", ".join(f"spec.monitoring.labels[{k!r}]" for k in plan.remove))
    return " and ".join(parts)


def _namespace_fix(namespace: str, plan: LabelPlan) -> str:
    args = [f"{k}={v}" for k, v in plan.add.items()] + [f"{k}-" for k in plan.remove]
    return f"label the namespace: kubectl label namespace {namespace} {' '.join(args)}"


# --------------------------------------------------------------------------- across objects


@dataclass(frozen=True)
class PrometheusVerdict:
    """One Prometheus against every object of a PromDemo."""

    prometheus: str
    verdicts: tuple[Verdict, ...]

    @property
    def selects_all(self) -> bool:
        return all(v.selected for v in self.verdicts)

    @property
    def effort(self) -> int:
        return max((v.effort for v in self.verdicts), default=0)

    @property
    def labels(self) -> LabelPlan:
        """The change to spec.monitoring.labels for every object at once (one label set)."""
        return _merge_plans(v.labels for v in self.verdicts if v.labels is not None)

    @property
    def message(self) -> str:
        failing = [v for v in self.verdicts if not v.selected]
        if not failing:
            kinds = " and ".join(v.kind for v in self.verdicts)
            return f"selected by Prometheus {self.prometheus} ({kinds})"
        clauses = _join_kinds(_dedupe(p for v in failing for p in v.problems))
        return f"Prometheus {self.prometheus} " + " and ".join(clauses)

    @property
    def fix(self) -> str | None:
        failing = [v for v in self.verdicts if not v.selected]
        if not failing:
            return None
        combined = self.labels
        fixes = _dedupe(f for v in failing for f in v.fixes)
        if combined.blockers:
            # One key, two values: spec.monitoring.labels labels both objects alike.
            fixes.insert(
                0,
                f"change the selectors of Prometheus {self.prometheus}: the ServiceMonitor and"
                f" the PrometheusRule would need different labels ({'; '.join(combined.blockers)})"
                " but spec.monitoring.labels labels both",
            )
        elif not combined.empty:
            fixes.insert(0, _labels_fix(combined))
        return "; and ".join(fixes) or None

    @property
    def effort_with_labels(self) -> int:
        """`effort`, counting labels that both objects cannot share as a Prometheus change."""
        return 3 if self.labels.blockers else self.effort


_CLAUSE = re.compile(r"^(selects|looks for) (ServiceMonitors|PrometheusRules) (.+)$")


def _join_kinds(clauses: list[str]) -> list[str]:
    """Join the clauses that differ only in the kind: "selects A and B labelled x"."""
    joined: dict[tuple[str, str] | str, list[str]] = {}
    for clause in clauses:
        match = _CLAUSE.match(clause)
        if match is None:
            joined.setdefault(clause, [])
            continue
        verb, plural, rest = match.groups()
        joined.setdefault((verb, rest), []).append(plural)
    return [
        key if isinstance(key, str) else f"{key[0]} {' and '.join(plurals)} {key[1]}"
        for key, plurals in joined.items()
    ]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_plans(plans: Iterable[LabelPlan]) -> LabelPlan:
    add: dict[str, str] = {}
    remove: list[str] = []
    blockers: list[str] = []
    for plan in plans:
        blockers.extend(plan.blockers)
        for key, value in plan.add.items():
            if add.get(key, value) != value:
                blockers.append(f"{key}={add[key]} for one, {key}={value} for the other")
            add.setdefault(key, value)
        remove.extend(k for k in plan.remove if k not in remove)
    for key in remove:
        if key in add:
            blockers.append(f"label {key} set for one and absent for the other")
    return LabelPlan(add=add, remove=tuple(remove), blockers=tuple(_dedupe(blockers)))


@dataclass(frozen=True)
class SelectionReport:
    """Every Prometheus against every object of one PromDemo, and the verdict for a condition."""

    objects: tuple[MonitoringObject, ...]
    prometheuses: tuple[PrometheusVerdict, ...]

    @property
    def selected_by(self) -> tuple[str, ...]:
        """The Prometheus objects selecting every object (the metrics and the rules together)."""
        return tuple(p.prometheus for p in self.prometheuses if p.selects_all)

    @property
    def selected(self) -> bool:
        return not self.objects or bool(self.selected_by)

    def selecting(self, kind: str) -> tuple[str, ...]:
        """The Prometheus objects selecting the object of `kind`."""
        return tuple(
            p.prometheus
            for p in self.prometheuses
            for v in p.verdicts
            if v.kind == kind and v.selected
        )

    @property
    def best(self) -> PrometheusVerdict | None:
        """The Prometheus closest to selecting everything (least effort; first in order on ties)."""
        if not self.prometheuses:
            return None
        return min(self.prometheuses, key=lambda p: p.effort_with_labels)

    @property
    def reason(self) -> str:
        if not self.objects:
            return NOTHING_TO_SELECT
        if self.selected:
            return SELECTED
        if not self.prometheuses:
            return NO_PROMETHEUS
        if all(self.selecting(o.kind.kind) for o in self.objects):
            return SPLIT
        best = self.best
        return next((v.reason for v in best.verdicts if not v.selected), SELECTED) if best else ""

    @property
    def message(self) -> str:
        """One line: who selects, or why none does and the fix (for a status condition)."""
        if not self.objects:
            return "spec.monitoring creates no ServiceMonitor and no PrometheusRule"
        if self.selected:
            kinds = " and ".join(o.kind.kind for o in self.objects)
            names = ", ".join(self.selected_by)
            return f"selected by Prometheus {names} ({kinds})"
        if not self.prometheuses:
            return "no Prometheus object (monitoring.coreos.com/v1) to select the PromDemo"
        if self.reason == SPLIT:
            parts = [
                f"{o.kind.kind} by {', '.join(self.selecting(o.kind.kind))}" for o in self.objects
            ]
            return (
                "no single Prometheus selects both: "
                + "; ".join(parts)
                + " (the recording rules need the metrics in the same Prometheus)"
            )
        best = self.best
        fix = self.fix
        return (best.message if best else "") + (f"; {fix}" if fix else "")

    @property
    def fix(self) -> str | None:
        if self.selected:
            return None
        if not self.prometheuses:
            return "install prometheus-operator's Prometheus, or check that it is in the cluster"
        best = self.best
        return best.fix if best is not None else None


def check(
    prometheuses: Sequence[PrometheusSelectors],
    objects: Sequence[MonitoringObject],
    namespaces: Mapping[str, Mapping[str, str]],
) -> SelectionReport:
    """Every Prometheus against every object; `namespaces` maps a namespace to its labels.

    A namespace missing from `namespaces` has only its `kubernetes.io/metadata.name`.
    """
    results = []
    for prom in prometheuses:
        verdicts = tuple(
            decide(
                prom,
                obj,
                namespace_labels(obj.namespace, namespaces.get(obj.namespace)),
            )
            for obj in objects
        )
        results.append(PrometheusVerdict(prom.key, verdicts))
    return SelectionReport(tuple(objects), tuple(results))


# --------------------------------------------------------------------------- matchPrometheus: auto


@dataclass(frozen=True)
class AutoLabels:
    """`spec.monitoring.matchPrometheus: auto`: labels to add, or a refusal with its reason.

    `labels` is None when refused; `{}` when nothing needs adding.
    """

    labels: Mapping[str, str] | None
    reason: str
    message: str
    prometheus: str | None = None

    @property
    def refused(self) -> bool:
        return self.labels is None


def auto_labels(
    prometheuses: Sequence[PrometheusSelectors],
    objects: Sequence[MonitoringObject],
    namespaces: Mapping[str, Mapping[str, str]],
    *,
    user_labels: Mapping[str, str] | None = None,
) -> AutoLabels:
    """The labels that make the one Prometheus able to select the objects select them.

    A Prometheus is able when adding labels to the objects suffices: its
    namespace selectors already admit the namespace, and no requirement is on
    promdemo's own labels, on a label the user set in spec.monitoring.labels
    (`user_labels`: auto adds, it never overrides), or on a label's absence.
    Refused (labels None) when no Prometheus is able, or when the able ones
    need different labels.
    """
    user = dict(user_labels or {})
    report = check(prometheuses, objects, namespaces)
    if not objects:
        return AutoLabels({}, NOTHING_TO_SELECT, report.message)
    if report.selected:
        return AutoLabels({}, SELECTED, report.message, prometheus=report.selected_by[0])
    if not prometheuses:
        return AutoLabels(None, NO_PROMETHEUS, report.message)
    able: dict[str, dict[str, str]] = {}
    why_not: list[str] = []
    for p in report.prometheuses:
        plan = p.labels
        overridden = sorted(k for k in plan.add if k in user and user[k] != plan.add[k])
        if p.effort_with_labels > 1 or plan.blockers or plan.remove or overridden:
            if overridden:
                why = f"needs {format_labels({k: plan.add[k] for k in overridden})}, which"
                why += " spec.monitoring.labels sets otherwise"
            else:
                why = p.fix or p.message
            why_not.append(f"{p.prometheus}: {why}")
            continue
        able[p.prometheus] = dict(plan.add)
    if not able:
        return AutoLabels(
            None,
            "NoMatchablePrometheus",
            "matchPrometheus: auto found no Prometheus that labels alone can satisfy ("
            + "; ".join(why_not)
            + ")",
        )
    distinct = {tuple(sorted(labels.items())) for labels in able.values()}
    if len(distinct) > 1:
        options = "; ".join(f"{name} needs {format_labels(lbl)}" for name, lbl in able.items())
        return AutoLabels(
            None,
            "AmbiguousPrometheus",
            f"matchPrometheus: auto found several Prometheus needing different labels ({options}):"
            " set spec.monitoring.labels to the one you mean",
        )
    name, labels = next(iter(able.items()))
    names = ", ".join(able)
    return AutoLabels(
        labels,
        "LabelsAdded",
        f"added {format_labels(labels)} so that Prometheus {names} selects the PromDemo",
        prometheus=name,
    )
