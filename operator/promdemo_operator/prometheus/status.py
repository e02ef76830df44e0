"""What a PromDemo's status says about Prometheus: selected, scraped, evaluated, the numbers (pure).

The operator reports three conditions and two status fields, computed here from
what it already knows (no I/O):

- `PrometheusSelected` (`selected_condition`): which prometheus-operator
  `Prometheus` objects select the ServiceMonitor *and* the PrometheusRule
  (`selection.check` over the watched Prometheus objects, the namespace's labels
  and the objects' labels as they are in the cluster), or why none does with the
  fix; `Unknown` while it cannot be decided (no ServiceMonitor/PrometheusRule to
  select, prometheus-operator's CRDs missing);
- `TargetsUp`, `RulesLoaded`, `status.targets`, `status.lessons`
  (`health_status`): what each selecting Prometheus answered
  (`parse.Snapshot`: /api/v1/targets, /api/v1/rules and the lessons query),
  judged by doctor's findings (`doctor.chain.targets_finding` / `rules_finding`:
  the same reasons, details and fixes as `promdemo doctor`).

`spec.monitoring.matchPrometheus: auto` is `auto_match`: the spec with the labels
`selection.auto_labels` says the one able Prometheus needs, added to (never
overriding) `spec.monitoring.labels`.

`prometheus_record` is what the operator keeps of a watched Prometheus object:
the fields selection and the service proxy read, nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promdemo_operator.core.names import MONITORING_API_VERSION
from promdemo_operator.core.plaindata import plain
from promdemo_operator.core.reconcile_status import condition, merge_conditions
from promdemo_operator.core.render import monitoring_labels
from promdemo_operator.core.spec import PromDemoSpec
from promdemo_operator.prometheus.chain import (
    BROKEN,
    Finding,
    PrometheusAnswer,
    rules_finding,
    targets_finding,
)
from promdemo_operator.prometheus.parse import Snapshot
from promdemo_operator.prometheus.selection import (
    KINDS,
    SELECTOR_FIELDS,
    AutoLabels,
    MonitoringObject,
    PrometheusError,
    PrometheusSelectors,
    SelectionReport,
    auto_labels,
    check,
    format_labels,
)

__all__ = [
    "CONDITIONS",
    "RULES_LOADED",
    "SELECTED",
    "TARGETS_UP",
    "Asked",
    "Selection",
    "auto_match",
    "health_status",
    "monitoring_objects",
    "prometheus_record",
    "prometheuses_to_ask",
    "record_key",
    "select",
    "selected_condition",
    "selection",
    "selectors",
]

SELECTED = "PrometheusSelected"
TARGETS_UP = "TargetsUp"
RULES_LOADED = "RulesLoaded"
CONDITIONS = (SELECTED, TARGETS_UP, RULES_LOADED)

UNKNOWN = "Unknown"

#: The fields of a Prometheus's spec that selection (`PrometheusSelectors`) and the service
#: proxy path (`doctor.cluster.proxy_path`) read; the rest is never kept in memory.
PROMETHEUS_SPEC_FIELDS = (
    # the selectors, and those whose invalid value keeps a ServiceMonitor out (BLOCKING)
    *SELECTOR_FIELDS,
    "serviceName",
    "portName",
    "routePrefix",
    "shards",
)


# --------------------------------------------------------------------------- selection


def prometheus_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a Prometheus object: name, namespace and the fields that matter here.

    Equal records mean nothing that selection or the proxy path depends on changed
    (prometheus-operator rewrites a Prometheus's status often: that is not a change).
    """
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    kept: dict[str, Any] = {
        key: plain(spec[key]) for key in PROMETHEUS_SPEC_FIELDS if spec.get(key) is not None
    }
    tls = (spec.get("web") or {}).get("tlsConfig") if isinstance(spec.get("web"), Mapping) else None
    if tls:
        kept["web"] = {"tlsConfig": plain(tls)}
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "Prometheus",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": kept,
    }


def record_key(record: Mapping[str, Any]) -> str:
    """`namespace/name` of a Prometheus record: how selection names it."""
    meta = record.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def selectors(records: Iterable[Mapping[str, Any]]) -> list[PrometheusSelectors]:
    """The Prometheus objects' selectors, by namespace/name; an unusable object selects nothing."""
    out = []
    for record in records:
        try:
            out.append(PrometheusSelectors.from_object(record))
        except PrometheusError:
            continue
    return sorted(out, key=lambda p: p.key)


def monitoring_objects(
    name: str,
    namespace: str,
    spec: PromDemoSpec,
    live: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[MonitoringObject]:
    """The ServiceMonitor and PrometheusRule the spec asks for, with their labels.

    `live` maps a kind to the object as it is in the cluster (its labels are what a
    Prometheus sees, other writers' included); a kind missing there has the labels
    the operator renders.
    """
    wanted = []
    if spec.monitoring.service_monitor:
        wanted.append("ServiceMonitor")
    if spec.monitoring.prometheus_rule:
        wanted.append("PrometheusRule")
    objects = []
    for kind in wanted:
        obj = (live or {}).get(kind)
        if obj is not None:
            labels = dict((obj.get("metadata") or {}).get("labels") or {})
        else:
            labels = monitoring_labels(name, spec)
        objects.append(MonitoringObject(KINDS[kind], namespace, name, labels))
    return objects


def select(
    records: Iterable[Mapping[str, Any]],
    objects: Sequence[MonitoringObject],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> SelectionReport:
    """`selection.check` of the watched Prometheus objects against the PromDemo's objects."""
    return check(selectors(records), objects, namespace_labels)


def auto_match(
    name: str,
    namespace: str,
    spec: PromDemoSpec,
    records: Iterable[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> tuple[PromDemoSpec, AutoLabels | None]:
    """`spec.monitoring.matchPrometheus: auto`: the spec with the labels to add, and why.

    The labels of `selection.auto_labels` join spec.monitoring.labels (which they never
    override: auto_labels refuses instead). None for `off` or nothing to select.
    """
    if spec.monitoring.match_prometheus != "auto":
        return spec, None
    objects = monitoring_objects(name, namespace, spec)
    if not objects:
        return spec, None
    user = dict(spec.monitoring.labels)
    auto = auto_labels(selectors(records), objects, namespace_labels, user_labels=user)
    if auto.refused or not auto.labels:
        return spec, auto
    monitoring = dataclasses.replace(spec.monitoring, labels={**auto.labels, **user})
    return dataclasses.replace(spec, monitoring=monitoring), auto


def selected_condition(
    *,
    wanted: bool,
    monitoring_served: bool,
    prometheus_served: bool,
    report: SelectionReport | None,
    auto: AutoLabels | None = None,
) -> dict[str, str]:
    """`PrometheusSelected` (see the module docstring for when it is Unknown).

    `wanted`: the spec asks for a ServiceMonitor or a PrometheusRule;
    `monitoring_served`: their CRDs are served; `prometheus_served`: the Prometheus
    CRD is; `report`: `select(...)` on the objects as applied.
    """
    if not wanted:
        return _unknown(
            SELECTED, "NothingToSelect",
            "spec.monitoring creates no ServiceMonitor and no PrometheusRule",
        )  # fmt: skip
    if not monitoring_served:
        return _unknown(
            SELECTED, "MonitoringCRDsMissing",
            "the monitoring.coreos.com CRDs are not installed: there is no ServiceMonitor or"
            " PrometheusRule to select",
        )  # fmt: skip
    if not prometheus_served:
        return _unknown(
            SELECTED, "PrometheusCRDMissing",
            "monitoring.coreos.com/v1 does not serve Prometheus objects (prometheus-operator"
            " is not installed): no Prometheus object can select the ServiceMonitor and the"
            " PrometheusRule",
        )  # fmt: skip
    if auto is not None and auto.refused:
        return condition(SELECTED, False, auto.reason, auto.message)
    if report is None:
        return _unknown(SELECTED, "NotChecked", "the objects to select are not known yet")
    if report.selected:
        message = report.message
        if auto is not None and auto.labels:
            message += f"; matchPrometheus: auto added {format_labels(auto.labels)}"
        return condition(SELECTED, True, report.reason, message)
    return condition(SELECTED, False, report.reason, report.message)


#: Why the observe loop asks no Prometheus, unless the condition says a better why.
NOT_SELECTED = ("NotSelected", "no Prometheus selects the PromDemo (see PrometheusSelected)")


def prometheuses_to_ask(
    selected: Mapping[str, str],
    report: SelectionReport | None,
    records: Iterable[Mapping[str, Any]],
) -> tuple[tuple[Mapping[str, Any], ...], tuple[str, str]]:
    """Which of the watched Prometheus `records` to ask about the PromDemo (those that
    select it, when `selected` is True), and what TargetsUp and RulesLoaded say when
    none is asked: (reason, message), the CRDs missing when that is why."""
    asked: tuple[Mapping[str, Any], ...] = ()
    not_asked = NOT_SELECTED
    if selected["status"] == "True" and report is not None:
        chosen = set(report.selected_by)
        asked = tuple(r for r in records if record_key(r) in chosen)
    elif selected["reason"] in ("MonitoringCRDsMissing", "PrometheusCRDMissing"):
        not_asked = (selected["reason"], selected["message"])
    return asked, not_asked


@dataclass(frozen=True)
class Selection:
    """What the reconcile decides about Prometheus: the `PrometheusSelected` condition,
    which watched Prometheus records the observe loop asks (`asked`), and what TargetsUp
    and RulesLoaded say when it asks none (`not_asked`: reason, message)."""

    condition: dict[str, str]
    asked: tuple[Mapping[str, Any], ...]
    not_asked: tuple[str, str]


def selection(
    name: str,
    namespace: str,
    spec: PromDemoSpec,
    *,
    live: Mapping[str, Mapping[str, Any] | None],
    monitoring_served: bool,
    prometheus_served: bool,
    records: Sequence[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
    auto: AutoLabels | None = None,
) -> Selection:
    """PrometheusSelected for PromDemo `namespace/name`'s ServiceMonitor and PrometheusRule
    as applied (`live`: kind → the object in the cluster), and whom to ask about it."""
    wanted = spec.monitoring.service_monitor or spec.monitoring.prometheus_rule
    objects = monitoring_objects(name, namespace, spec, live)
    report = select(records, objects, namespace_labels) if wanted else None
    selected = selected_condition(
        wanted=wanted,
        monitoring_served=monitoring_served,
        prometheus_served=prometheus_served,
        report=report,
        auto=auto,
    )
    asked, not_asked = prometheuses_to_ask(selected, report, records)
    return Selection(selected, asked, not_asked)


def _unknown(type_: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": UNKNOWN, "reason": reason, "message": message}


# --------------------------------------------------------------------------- health


@dataclass(frozen=True)
class Asked:
    """One Prometheus asked about the PromDemo, and its latest snapshot.

    `prometheus` is its `namespace/name` (or the URL of --prometheus-url);
    `namespace`/`service` the Service it is asked through (None: by URL);
    `notes` what qualifies its answer (a Service shared by several Prometheus).
    """

    prometheus: str
    snapshot: Snapshot
    namespace: str | None = None
    service: str | None = None
    notes: tuple[str, ...] = ()

    def answer(self) -> PrometheusAnswer:
        """The snapshot in the shape doctor's findings read."""
        snap = self.snapshot
        errors = {k: v for k, v in snap.errors.items() if k in ("targets", "rules")}
        return PrometheusAnswer(
            prometheus=self.prometheus,
            targets=snap.targets,
            rules=snap.rules,
            errors=errors,
            namespace=self.namespace,
            service=self.service,
            notes=self.notes,
        )


def _message(findings: Sequence[Finding]) -> str:
    details = "; ".join(f.detail for f in findings)
    fix = next((f.fix for f in findings if f.state == BROKEN and f.fix), None)
    return f"{details}; fix: {fix}" if fix else details


def _judged(type_: str, findings: Sequence[Finding], ok_reason: str) -> dict[str, str]:
    broken = next((f for f in findings if f.state == BROKEN), None)
    if broken is None:
        return condition(type_, True, ok_reason, _message(findings))
    return condition(type_, False, broken.reason, _message(findings))


def health_status(
    current: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    service_monitor: bool,
    prometheus_rule: bool,
    replicas: int,
    asked: Sequence[Asked],
    not_asked: tuple[str, str] = ("NotSelected", "no Prometheus selects the PromDemo"),
    now: str,
) -> dict[str, Any]:
    """`TargetsUp`, `RulesLoaded`, `targets` and `lessons` from what `asked` answered.

    `asked` is every Prometheus to ask (in order: the first one's numbers are the
    status's); empty means none, for the reason `not_asked` (reason, message): both
    conditions are then Unknown with it. `targets`/`lessons` are None (removed) when
    there is nothing to show; a lesson number is absent before it exists.
    """
    targets: dict[str, Any] | None = None
    lessons: dict[str, Any] | None = None
    if not service_monitor:
        targets_cond = _unknown(
            TARGETS_UP, "ServiceMonitorDisabled", "spec.monitoring.serviceMonitor is off"
        )
    elif not asked:
        targets_cond = _unknown(TARGETS_UP, *not_asked)
    else:
        findings = [targets_finding(a.answer(), namespace, name, operator=True) for a in asked]
        if findings[0].targets is not None:
            targets = findings[0].targets.as_status()
        if replicas == 0:
            targets_cond = _unknown(
                TARGETS_UP, "ScaledToZero", "spec.replicas is 0: there is nothing to scrape"
            )
        else:
            targets_cond = _judged(TARGETS_UP, findings, "TargetsUp")
    if not prometheus_rule:
        rules_cond = _unknown(
            RULES_LOADED, "PrometheusRuleDisabled", "spec.monitoring.prometheusRule is off"
        )
    elif not asked:
        rules_cond = _unknown(RULES_LOADED, *not_asked)
    else:
        findings = [rules_finding(a.answer(), namespace, name, operator=True) for a in asked]
        rules_cond = _judged(RULES_LOADED, findings, "RulesLoaded")
        for one in asked:
            numbers = one.snapshot.for_promdemo(namespace, name).lessons
            if numbers is not None and not numbers.empty:
                lessons = numbers.as_status()
                break
    return {
        "targets": targets,
        "lessons": lessons,
        "conditions": merge_conditions(
            current.get("conditions"), [targets_cond, rules_cond], now=now
        ),
    }
