"""The chain from a PromDemo to its alerts, link by link, and the fix for the first broken one.

`diagnose(facts, reports, answers)` decides every link of every PromDemo from facts
already read (`ClusterFacts`: the objects; `PrometheusAnswer`: what each Prometheus
answered), in the order in which one depends on the other:

=========  ==================================================================  =========
link       holds when                                                          source
=========  ==================================================================  =========
crds       monitoring.coreos.com/v1 serves ServiceMonitor, PrometheusRule and  discovery
           Prometheus (prometheus-operator's CRDs are installed)
children   the spec is accepted and the Deployment, Service, Secret,           the API
           ServiceMonitor and PrometheusRule exist
pods       the Deployment's replicas are ready                                 the API
selected   one Prometheus selects the ServiceMonitor and the PrometheusRule    selection
targets    that Prometheus has the PromDemo's targets, all up                  promapi
rules      it has loaded the PromDemo's rule groups, evaluated without error   promapi
alerts     (a fact) which of the PromDemo's alerts fire                        promapi
heal       (a fact) the operator's last inventory reset                        status
=========  ==================================================================  =========

A link that cannot be decided (its input is missing because an earlier one
broke) is `skipped` with the reason; `alerts` and `heal` never break. Every link
has a one-line detail; the first broken one carries the fix a user can apply.

Plain Python: no kopf, no kubernetes client, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from promdemo_operator.core.names import MONITORING_API_VERSION, secret_name
from promdemo_operator.core.render import render_children
from promdemo_operator.core.spec import PromDemoSpec, SpecError, parse_spec
from promdemo_operator.prometheus.parse import (
    AlertState,
    PromAPIError,
    RulesStatus,
    TargetsStatus,
    promdemo_selector,
    rules_status,
    targets_status,
)
from promdemo_operator.prometheus.selection import (
    KINDS,
    MonitoringObject,
    PrometheusError,
    PrometheusSelectors,
    SelectionReport,
    check,
    format_labels,
)

__all__ = [
    "BROKEN",
    "LINKS",
    "NOTE",
    "OK",
    "PROMETHEUS",
    "SKIPPED",
    "Chain",
    "ClusterFacts",
    "Finding",
    "Link",
    "PrometheusAnswer",
    "diagnose",
    "prometheuses_to_ask",
    "rules_finding",
    "select",
    "targets_finding",
]

# The states of a link.
#: What a reader of one part of a Prometheus answer returns (TargetsStatus, RulesStatus).
S = TypeVar("S")

OK = "ok"
BROKEN = "broken"
SKIPPED = "skipped"
NOTE = "note"  # a fact worth a look (an alert firing), never a broken link

LINKS = ("crds", "children", "pods", "selected", "targets", "rules", "alerts", "heal")
PROMETHEUS = "Prometheus"
SERVICE_MONITOR = "ServiceMonitor"
PROMETHEUS_RULE = "PrometheusRule"
#: Where the install manifests (manifests/base) run the operator.
OPERATOR_NAMESPACE = "promdemo-system"
OPERATOR_DEPLOYMENT = "promdemo-operator"


@dataclass(frozen=True)
class Link:
    """One link of a chain: its state, what was seen, and (when broken) the fix."""

    name: str
    state: str  # OK | BROKEN | SKIPPED | NOTE
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Chain:
    """Every link of one PromDemo, in order."""

    namespace: str
    name: str
    links: tuple[Link, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def broken(self) -> Link | None:
        """The first broken link: its fix is the one to apply first."""
        return next((link for link in self.links if link.state == BROKEN), None)

    @property
    def healthy(self) -> bool:
        return self.broken is None

    def link(self, name: str) -> Link:
        return next(link for link in self.links if link.name == name)


@dataclass(frozen=True)
class ClusterFacts:
    """What was read from the API server, as plain objects.

    `objects` maps (kind, namespace, name) to each child found (Deployment,
    Service, Secret, ServiceMonitor, PrometheusRule; metadata suffices but for
    the Deployment). `unreadable` maps a kind the user may not read (or that
    failed) to why: those children are not checked. `prometheuses` is None when
    they could not be listed (the reason in `unreadable["Prometheus"]`).
    `namespace_labels` holds the labels of the PromDemos' namespaces that could
    be read (`unreadable["Namespace"]` otherwise).
    """

    promdemos: Sequence[Mapping[str, Any]]
    objects: Mapping[tuple[str, str, str], Mapping[str, Any]]
    monitoring_kinds: frozenset[str]
    prometheuses: Sequence[Mapping[str, Any]] | None
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrometheusAnswer:
    """What one Prometheus answered to GET /api/v1/targets and /api/v1/rules, or why not.

    `prometheus` is the Prometheus object's `namespace/name` (or the URL given
    with --prometheus-url); `namespace`/`service` are the Service it was asked
    through (None for a URL); `errors` maps "targets"/"rules" to a failed call's
    message; `notes` qualify the answer (a Service shared by several Prometheus).
    """

    prometheus: str
    targets: Mapping[str, Any] | None = None
    rules: Mapping[str, Any] | None = None
    errors: Mapping[str, str] = field(default_factory=dict)
    namespace: str | None = None
    service: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def direct(self) -> bool:
        return self.service is None


# --------------------------------------------------------------------------- selection


def _spec(pd: Mapping[str, Any]) -> tuple[PromDemoSpec | None, SpecError | None]:
    try:
        return parse_spec(pd.get("spec")), None
    except SpecError as exc:
        return None, exc


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _monitoring_objects(
    facts: ClusterFacts, pd: Mapping[str, Any], spec: PromDemoSpec
) -> list[MonitoringObject]:
    """The ServiceMonitor and PrometheusRule as they are, or as the operator would make them."""
    namespace, name = _meta(pd)
    try:
        rendered = render_children(name, namespace, spec, token="unused")  # noqa: S106
    except SpecError:
        return []
    objects = []
    for child in rendered:
        kind = child.get("kind")
        if kind not in KINDS:
            continue
        live = facts.objects.get((str(kind), namespace, name))
        source = dict(live) if live is not None else child
        # A metadata-only answer has no apiVersion/kind of its own: the kind is known here.
        source = {**source, "apiVersion": MONITORING_API_VERSION, "kind": kind}
        objects.append(MonitoringObject.from_object(source))
    return objects


def _prometheus_selectors(facts: ClusterFacts) -> list[PrometheusSelectors]:
    out = []
    for obj in facts.prometheuses or ():
        try:
            typed = {**obj, "apiVersion": MONITORING_API_VERSION, "kind": PROMETHEUS}
            out.append(PrometheusSelectors.from_object(typed))
        except PrometheusError:
            continue  # not a usable Prometheus object: it selects nothing
    return sorted(out, key=lambda p: p.key)


def select(facts: ClusterFacts) -> dict[str, SelectionReport]:
    """Per PromDemo `namespace/name`, which Prometheus objects select it (selection.check).

    PromDemos whose spec is refused, or that create no ServiceMonitor and no
    PrometheusRule, or when the Prometheus objects are unknown, have no report.
    """
    if facts.prometheuses is None:
        return {}
    prometheuses = _prometheus_selectors(facts)
    reports: dict[str, SelectionReport] = {}
    for pd in facts.promdemos:
        spec, _ = _spec(pd)
        if spec is None:
            continue
        objects = _monitoring_objects(facts, pd, spec)
        if not objects:
            continue
        namespace, name = _meta(pd)
        reports[f"{namespace}/{name}"] = check(prometheuses, objects, facts.namespace_labels)
    return reports


def prometheuses_to_ask(
    facts: ClusterFacts, reports: Mapping[str, SelectionReport]
) -> list[Mapping[str, Any]]:
    """The Prometheus objects that select at least one PromDemo: each is asked once."""
    wanted = {key for report in reports.values() for key in report.selected_by}
    chosen = []
    for obj in facts.prometheuses or ():
        namespace, name = _meta(obj)
        if f"{namespace}/{name}" in wanted:
            chosen.append(obj)
    return sorted(chosen, key=_meta)


# --------------------------------------------------------------------------- the links


def _condition(pd: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (pd.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def _wanted_kinds(spec: PromDemoSpec | None) -> list[str]:
    if spec is None:
        return []
    kinds = []
    if spec.monitoring.service_monitor:
        kinds.append(SERVICE_MONITOR)
    if spec.monitoring.prometheus_rule:
        kinds.append(PROMETHEUS_RULE)
    return kinds


def _crds(facts: ClusterFacts, wanted: list[str]) -> Link:
    if not wanted:
        return Link("crds", OK, "not needed: spec.monitoring creates no ServiceMonitor and no rule")
    needed = [*wanted, PROMETHEUS]
    missing = [k for k in needed if k not in facts.monitoring_kinds]
    if missing:
        return Link(
            "crds",
            BROKEN,
            f"monitoring.coreos.com/v1 does not serve {_and(missing)}:"
            " prometheus-operator's CRDs are not installed",
            "install prometheus-operator with its CRDs, e.g. `helm install prometheus"
            " prometheus-community/kube-prometheus-stack -n monitoring --create-namespace`;"
            " the promdemo operator then creates the ServiceMonitor and the PrometheusRule",
        )
    return Link("crds", OK, f"monitoring.coreos.com/v1 serves {_and(needed)}")


def _operator_fix(pd: Mapping[str, Any], what: str) -> str:
    namespace, name = _meta(pd)
    status = pd.get("status") or {}
    logs = f"kubectl -n {OPERATOR_NAMESPACE} logs deploy/{OPERATOR_DEPLOYMENT}"
    if not status.get("observedGeneration"):
        return (
            f"the operator has not reconciled PromDemo {namespace}/{name}: check that it runs"
            f" (`kubectl -n {OPERATOR_NAMESPACE} get deploy {OPERATOR_DEPLOYMENT}`) and read"
            f" its log (`{logs}`)"
        )
    return (
        f"the operator reconciled the PromDemo but {what}: it recreates missing children on"
        f" its next resync; its log says why not (`{logs}`)"
    )


def _children(
    facts: ClusterFacts,
    pd: Mapping[str, Any],
    spec_error: SpecError | None,
    wanted: list[str],
) -> Link:
    namespace, name = _meta(pd)
    refused = _condition(pd, "SpecValid")
    if spec_error is not None or (refused is not None and refused.get("status") == "False"):
        message = spec_error.message if spec_error is not None else str(refused.get("message"))
        return Link(
            "children",
            BROKEN,
            f"the operator refuses the spec: {message}",
            f"correct the spec (`kubectl -n {namespace} edit promdemo {name}`): {message}",
        )
    expected = [("Deployment", name), ("Service", name), ("Secret", secret_name(name))]
    expected += [(kind, name) for kind in wanted if kind in facts.monitoring_kinds]
    present, missing, unchecked = [], [], []
    for kind, child in expected:
        if kind in facts.unreadable:
            unchecked.append(f"{kind} ({facts.unreadable[kind]})")
        elif (kind, namespace, child) in facts.objects:
            present.append(kind if child == name else f"{kind} {child}")
        else:
            missing.append(f"{kind} {child}")
    note = f"; not checked: {', '.join(unchecked)}" if unchecked else ""
    if missing:
        return Link(
            "children",
            BROKEN,
            f"missing: {', '.join(missing)}{note}",
            _operator_fix(pd, f"{_and(missing)} {'is' if len(missing) == 1 else 'are'} missing"),
        )
    return Link("children", OK, ", ".join(present) + note)


def _pods(facts: ClusterFacts, pd: Mapping[str, Any]) -> tuple[Link, int | None]:
    """The pods link, and the Deployment's desired replicas (None: no Deployment)."""
    namespace, name = _meta(pd)
    deployment = facts.objects.get(("Deployment", namespace, name))
    if deployment is None:
        why = facts.unreadable.get("Deployment", "no Deployment")
        return Link("pods", SKIPPED, why), None
    desired = (deployment.get("spec") or {}).get("replicas")
    desired = 1 if desired is None else int(desired)
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    if desired == 0:
        return Link("pods", NOTE, "scaled to 0 (spec.replicas: 0): nothing to scrape"), 0
    if ready < desired:
        why = [
            f"{c.get('reason')}: {c.get('message')}"
            for c in (deployment.get("status") or {}).get("conditions") or []
            if isinstance(c, Mapping) and c.get("status") == "False" and c.get("message")
        ]
        selector = f"app.kubernetes.io/instance={name}"
        return Link(
            "pods",
            BROKEN,
            f"{ready}/{desired} ready" + (f" ({'; '.join(why)})" if why else ""),
            f"see why the pods are not ready: `kubectl -n {namespace} get pods -l {selector}`,"
            f" then `kubectl -n {namespace} describe pod POD` (image pull, crash or readiness)",
        ), desired
    return Link("pods", OK, f"{ready}/{desired} ready"), desired


def _patch_command(namespace: str, name: str, labels: Mapping[str, str]) -> str:
    patch = json.dumps({"spec": {"monitoring": {"labels": dict(labels)}}}, separators=(",", ":"))
    return f"kubectl -n {namespace} patch promdemo {name} --type merge -p '{patch}'"


def _selected(
    facts: ClusterFacts,
    pd: Mapping[str, Any],
    spec: PromDemoSpec | None,
    wanted: list[str],
    report: SelectionReport | None,
) -> Link:
    namespace, name = _meta(pd)
    if not wanted:
        return Link("selected", SKIPPED, "nothing to select: spec.monitoring turns both off")
    if PROMETHEUS not in facts.monitoring_kinds:
        return Link("selected", SKIPPED, "no Prometheus CRD to read")
    if facts.prometheuses is None:
        why = facts.unreadable.get(PROMETHEUS, "unknown reason")
        return Link(
            "selected",
            BROKEN,
            f"cannot list the Prometheus objects ({why})",
            "ask for list on prometheuses.monitoring.coreos.com in every namespace, or check"
            " offline: `kubectl get prometheus -A -o yaml > prometheus.yaml; promdemo"
            " check-selection -f promdemo.yaml --prometheus prometheus.yaml`",
        )
    if report is None:
        return Link("selected", SKIPPED, "the spec is refused")
    note = ""
    if "Namespace" in facts.unreadable:
        note = (
            f" (labels of namespace {namespace} not readable: {facts.unreadable['Namespace']};"
            " only kubernetes.io/metadata.name assumed)"
        )
    if report.selected:
        return Link("selected", OK, report.message + note)
    best = report.best
    detail = report.message if best is None or report.fix is None else best.message
    fix = report.fix
    if fix is not None and best is not None and best.effort_with_labels == 1:
        plan = best.labels
        if plan.add and not plan.remove and not plan.blockers:
            have = spec.monitoring.labels if spec is not None else {}
            if all(have.get(k) == v for k, v in plan.add.items()):
                # The spec asks for the labels; the live objects do not carry them yet.
                fix = (
                    f"spec.monitoring.labels already has {format_labels(plan.add)} but the"
                    " ServiceMonitor and PrometheusRule do not carry it yet: the operator"
                    " applies it at its next reconcile; if it does not, its log says why"
                    f" (`kubectl -n {OPERATOR_NAMESPACE} logs deploy/{OPERATOR_DEPLOYMENT}`)"
                )
            else:
                fix += f" (`{_patch_command(namespace, name, plan.add)}`)"
    return Link("selected", BROKEN, detail + note, fix)


_HTTP_STATUS = re.compile(r": HTTP (\d{3})\b")

# Reasons of a finding (CamelCase: the operator's TargetsUp and RulesLoaded conditions use them).
TARGETS_UP = "TargetsUp"
NO_TARGETS = "NoTargets"
TARGETS_DOWN = "TargetsDown"
RULES_LOADED = "RulesLoaded"
RULES_NOT_LOADED = "RulesNotLoaded"
RULE_EVALUATION_FAILED = "RuleEvaluationFailed"
UNREACHABLE = "PrometheusUnreachable"


def _unreachable_fix(answer: PrometheusAnswer, error: str, *, operator: bool = False) -> str:
    """What to do when a Prometheus could not be asked (by the message promapi gave).

    `operator`: the operator asked (its ServiceAccount, its --prometheus-url), not the user.
    """
    if answer.direct:
        return f"check that Prometheus answers at {answer.prometheus} ({error})"
    ns, svc = answer.namespace, answer.service
    if operator:
        forward = (
            "or start the operator with --prometheus-url URL of a Prometheus it can reach directly"
        )
    else:
        forward = (
            f"or ask it directly: `kubectl -n {ns} port-forward svc/{svc} 9090` and"
            " `promdemo doctor --prometheus-url http://127.0.0.1:9090`"
        )
    match = _HTTP_STATUS.search(error)
    status = int(match.group(1)) if match else None
    if status in (401, 403):
        if operator:
            who = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_DEPLOYMENT}"
            return (
                f"the operator may not reach Prometheus through the API server: its ClusterRole"
                f" needs get on services/proxy (manifests/base/rbac.yaml; `kubectl auth can-i"
                f" get services/proxy -n {ns} --as {who}`), {forward}"
            )
        return (
            f"you may not reach Prometheus through the API server: ask for get on services/proxy"
            f" in namespace {ns} (`kubectl auth can-i get services/proxy -n {ns}`), {forward}"
        )
    if status == 503:
        return (
            f"no Prometheus pod answers behind Service {ns}/{svc}: `kubectl -n {ns} get pods"
            f" -l app.kubernetes.io/name=prometheus` (and `kubectl -n {ns} describe prometheus"
            f" {answer.prometheus.split('/', 1)[-1]}`)"
        )
    if status == 404:
        return (
            f"Service {ns}/{svc} is missing: prometheus-operator has not reconciled Prometheus"
            f" {answer.prometheus} (`kubectl -n {ns} describe prometheus"
            f" {answer.prometheus.split('/', 1)[-1]}`)"
        )
    return f"Prometheus {answer.prometheus} does not answer through the API server; {forward}"


def _asked(
    report: SelectionReport | None,
    answers: Mapping[str, PrometheusAnswer],
    direct: PrometheusAnswer | None,
) -> list[PrometheusAnswer]:
    if direct is not None:
        return [direct]
    if report is None or not report.selected:
        return []
    return [answers[key] for key in report.selected_by if key in answers]


def _who(answer: PrometheusAnswer) -> str:
    return f"Prometheus {answer.prometheus}" + "".join(f" ({n})" for n in answer.notes)


@dataclass(frozen=True)
class Finding:
    """What one Prometheus says about the targets or the rules of one PromDemo.

    `state` is OK or BROKEN; `reason` a CamelCase word (TARGETS_UP, NO_TARGETS, ...);
    `detail` what was seen and `fix` what to do when broken; `targets` / `rules` what
    was read (None when Prometheus could not be asked).
    """

    state: str
    reason: str
    detail: str
    fix: str | None = None
    targets: TargetsStatus | None = None
    rules: RulesStatus | None = None

    @property
    def part(self) -> tuple[str, str, str | None]:
        return self.state, self.detail, self.fix


def _read(
    answer: PrometheusAnswer,
    part: str,
    body: Any,
    read: Callable[[Any, Mapping[str, str]], S],
    selector: Mapping[str, str],
    operator: bool,
) -> S | Finding:
    """`read(body, selector)`, or the UNREACHABLE finding when Prometheus did not answer
    that `part` (`targets`, `rules`) or answered something unreadable."""
    error = answer.errors.get(part)
    if error is None and body is not None:
        try:
            return read(body, selector)
        except PromAPIError as exc:
            error = str(exc)
    error = error or "no answer"
    fix = _unreachable_fix(answer, error, operator=operator)
    return Finding(BROKEN, UNREACHABLE, f"{_who(answer)}: {error}", fix)


def targets_finding(
    answer: PrometheusAnswer, namespace: str, name: str, *, operator: bool = False
) -> Finding:
    """The targets of PromDemo `namespace/name` in what `answer` holds."""
    selector = promdemo_selector(namespace, name)
    who = _who(answer)
    status = _read(answer, "targets", answer.targets, targets_status, selector, operator)
    if isinstance(status, Finding):
        return status
    if status.total == 0:
        return Finding(
            BROKEN,
            NO_TARGETS,
            f"{who} has no target {_series(selector)}",
            f"Prometheus has not loaded ServiceMonitor {namespace}/{name} yet: prometheus-operator"
            " rewrites its configuration within a minute of a change. If it stays so: its log"
            f" names the ServiceMonitor, and Prometheus's ServiceAccount must be allowed to list"
            f" Services, Endpoints and EndpointSlices in namespace {namespace} (kube-prometheus"
            " grants that only in default, kube-system and monitoring)",
            targets=status,
        )
    if status.up < status.total:
        where = f" ({status.last_error_target})" if status.last_error_target else ""
        error_text = f"; last error{where}: {status.last_error}" if status.last_error else ""
        return Finding(
            BROKEN,
            TARGETS_DOWN,
            f"{status.up}/{status.total} up in {who}{error_text}",
            f"the scrape of a pod fails{where}: {status.last_error or 'see the target'};"
            f" `kubectl -n {namespace} get pods -l app.kubernetes.io/instance={name}`",
            targets=status,
        )
    return Finding(OK, TARGETS_UP, f"{status.up}/{status.total} up in {who}", targets=status)


def _series(selector: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in selector.items()) + "}"


def _combine(name: str, parts: list[tuple[str, str, str | None]]) -> Link:
    """One link from the parts of several Prometheus: broken if one is; the first fix."""
    state = BROKEN if any(p[0] == BROKEN for p in parts) else OK
    fix = next((p[2] for p in parts if p[0] == BROKEN), None)
    return Link(name, state, "; ".join(p[1] for p in parts), fix)


def rules_finding(
    answer: PrometheusAnswer, namespace: str, name: str, *, operator: bool = False
) -> Finding:
    """The rule groups of PromDemo `namespace/name` in what `answer` holds."""
    selector = promdemo_selector(namespace, name)
    who = _who(answer)
    status = _read(answer, "rules", answer.rules, rules_status, selector, operator)
    if isinstance(status, Finding):
        return status
    if not status.loaded:
        return Finding(
            BROKEN,
            RULES_NOT_LOADED,
            f"{who} has not loaded {_and(list(status.missing))}",
            f"Prometheus has not loaded PrometheusRule {namespace}/{name} yet: prometheus-operator"
            " puts it in the rules ConfigMap and Prometheus reloads within a minute or two. If it"
            " stays so, prometheus-operator may have rejected it: `kubectl -n"
            f" {namespace} describe prometheusrule {name}` (Events) and its log",
            rules=status,
        )
    if status.last_error:
        return Finding(
            BROKEN,
            RULE_EVALUATION_FAILED,
            f"{who}: evaluation fails: {status.last_error}",
            f"a rule of PrometheusRule {namespace}/{name} fails to evaluate ({status.last_error});"
            " check spec.monitoring.alerts of the PromDemo",
            rules=status,
        )
    rules = sum(g.rules for g in status.groups)
    every = f", every {status.evaluation_interval:g}s" if status.evaluation_interval else ""
    groups = _and([g.name for g in status.groups])
    detail = f"{groups} loaded ({rules} rules{every}) in {who}"
    return Finding(OK, RULES_LOADED, detail, rules=status)


def _alert_text(alert: AlertState) -> str:
    where = alert.labels.get("pod") or alert.labels.get("instance")
    return alert.name + (f" ({where})" if where else "")


def _alerts(statuses: list[RulesStatus]) -> Link:
    alerts = [a for status in statuses for a in status.alerts]
    firing = [_alert_text(a) for a in alerts if a.state == "firing"]
    pending = [_alert_text(a) for a in alerts if a.state == "pending"]
    parts = []
    if firing:
        parts.append("firing: " + ", ".join(dict.fromkeys(firing)))
    if pending:
        parts.append("pending: " + ", ".join(dict.fromkeys(pending)))
    if not parts:
        return Link("alerts", OK, "none firing")
    return Link("alerts", NOTE if firing else OK, "; ".join(parts))


def _heal(pd: Mapping[str, Any], spec: PromDemoSpec | None) -> Link:
    status = pd.get("status") or {}
    count = int(status.get("healCount") or 0)
    last = status.get("lastHeal") or {}
    mode = "auto-heal " + ("on" if spec is not None and spec.auto_heal.enabled else "off")
    if not count and not last:
        return Link("heal", OK, f"no heal yet ({mode})")
    text = f"{count} heal{'s' if count != 1 else ''}"
    if last:
        before, after = last.get("before"), last.get("after")
        text += f"; last: pod {last.get('pod')}"
        if isinstance(before, int | float) and isinstance(after, int | float):
            text += f", inventory {before:g} → {after:g}"
        if last.get("time"):
            text += f", at {last['time']}"
    return Link("heal", OK, f"{text} ({mode})")


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _chain(
    facts: ClusterFacts,
    pd: Mapping[str, Any],
    report: SelectionReport | None,
    answers: Mapping[str, PrometheusAnswer],
    direct: PrometheusAnswer | None,
) -> Chain:
    namespace, name = _meta(pd)
    spec, spec_error = _spec(pd)
    wanted = _wanted_kinds(spec)
    links = [
        _crds(facts, wanted),
        _children(facts, pd, spec_error, wanted),
    ]
    pods, desired = _pods(facts, pd)
    links += [pods, _selected(facts, pd, spec, wanted, report)]
    asked = _asked(report, answers, direct)
    no_prometheus = (
        "no Prometheus selects the PromDemo"
        if report is not None
        else "which Prometheus to ask is unknown"
    )
    if SERVICE_MONITOR not in wanted:
        links.append(Link("targets", SKIPPED, "spec.monitoring.serviceMonitor is off"))
    elif desired == 0:
        links.append(Link("targets", SKIPPED, "no pods to scrape"))
    elif not asked:
        links.append(Link("targets", SKIPPED, no_prometheus))
    else:
        links.append(_combine("targets", [targets_finding(a, namespace, name).part for a in asked]))
    statuses: list[RulesStatus] = []
    if PROMETHEUS_RULE not in wanted:
        links.append(Link("rules", SKIPPED, "spec.monitoring.prometheusRule is off"))
        links.append(Link("alerts", SKIPPED, "no rules"))
    elif not asked:
        links.append(Link("rules", SKIPPED, no_prometheus))
        links.append(Link("alerts", SKIPPED, no_prometheus))
    else:
        parts = []
        for answer in asked:
            finding = rules_finding(answer, namespace, name)
            parts.append(finding.part)
            if finding.rules is not None:
                statuses.append(finding.rules)
        links.append(_combine("rules", parts))
        links.append(_alerts(statuses) if statuses else Link("alerts", SKIPPED, "no rules read"))
    links.append(_heal(pd, spec))
    return Chain(namespace, name, tuple(links))


def diagnose(
    facts: ClusterFacts,
    reports: Mapping[str, SelectionReport],
    answers: Mapping[str, PrometheusAnswer],
    *,
    direct: PrometheusAnswer | None = None,
) -> list[Chain]:
    """The chain of every PromDemo in `facts`, sorted by namespace and name.

    `reports` is `select(facts)`; `answers` maps a Prometheus object's
    `namespace/name` to what it answered (every object `prometheuses_to_ask`
    named); `direct` is the one Prometheus given by URL, which then answers
    for every PromDemo instead.
    """
    chains = []
    for pd in facts.promdemos:
        namespace, name = _meta(pd)
        chains.append(_chain(facts, pd, reports.get(f"{namespace}/{name}"), answers, direct))
    return sorted(chains, key=lambda c: (c.namespace, c.name))
