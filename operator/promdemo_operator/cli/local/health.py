"""What the demo's own Prometheus says about it: doctor's links on one machine, and the lessons.

`read_health(snapshot, place)` turns one `parse.Snapshot` (one /api/v1/targets,
one /api/v1/rules and one lessons query), read for the demo's job
(`promdemo_selector(None, JOB)`), into the links `promdemo doctor` checks in a
cluster that exist here:

- `targets`: the replicas Prometheus scrapes, up / total, and the last scrape error;
- `rules`: the recording and alerting groups loaded, and the last evaluation error;
- `alerts`: the alerts pending and firing, per replica (a fact, never broken);

the fix for the first broken one, worded for this machine (a replica's log, the
rules file, Prometheus's log), and the lesson numbers the recording rules hold
(p95 latency, success ratio, request rate over 5 minutes).

Plain Python over data already read; `loops.prometheus_loop` does the reading.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from promdemo_operator.cli.local.monitoring import JOB
from promdemo_operator.core.duration import format_seconds
from promdemo_operator.prometheus.chain import BROKEN, NOTE, OK, SKIPPED, Link
from promdemo_operator.prometheus.parse import (
    AlertState,
    Lessons,
    PromDemoHealth,
    RulesStatus,
    Snapshot,
    TargetsStatus,
    promdemo_selector,
)

__all__ = ["BROKEN", "NOTE", "OK", "SELECTOR", "SKIPPED", "LocalHealth", "Place", "read_health"]

#: The demo's series: one plain scrape job (no namespace, unlike under prometheus-operator).
SELECTOR = promdemo_selector(None, JOB)
PROMETHEUS_CHILD = "prometheus"  # the child's name: its log is WORKDIR/prometheus.log


@dataclass(frozen=True)
class Place:
    """Where the demo's parts are, to word a fix: URLs, logs, which child exited."""

    prometheus_url: str
    workdir: Path
    #: Prometheus's `instance` label → the replica's name
    replicas: Mapping[str, str] = field(default_factory=dict)
    #: child name (`replica-2`, `prometheus`) → exit code, for the children that exited
    exited: Mapping[str, int] = field(default_factory=dict)
    #: Prometheus started moments ago: no target yet is not (yet) a broken link
    starting: bool = False

    def log(self, child: str) -> Path:
        return self.workdir / f"{child}.log"


@dataclass(frozen=True)
class LocalHealth:
    """One reading of Prometheus: the links, the lesson numbers, when it was read."""

    links: tuple[Link, ...]
    lessons: Lessons | None
    targets: TargetsStatus | None = None
    rules: RulesStatus | None = None
    lessons_error: str | None = None
    #: the rule groups' evaluation interval as Prometheus reports it (None when unread)
    evaluation_interval: float | None = None
    #: False when no call was answered (Prometheus is down or gone)
    answered: bool = True
    read_at: float = field(default_factory=time.time)

    @property
    def broken(self) -> Link | None:
        """The first broken link: its fix is the one to apply first."""
        return next((link for link in self.links if link.state == BROKEN), None)

    def link(self, name: str) -> Link:
        return next(link for link in self.links if link.name == name)

    @property
    def lessons_text(self) -> str:
        """`p95 1.9s, success 90.7%, 14.6 req/s`, or why there are no numbers."""
        lessons = self.lessons
        if lessons is None:
            return f"not read: {self.lessons_error or 'no answer'}"
        if lessons.empty:
            return "no numbers yet: the recording rules have not run"
        rate = "" if lessons.request_rate is None else f"{lessons.request_rate:.3g} req/s"
        if lessons.p95_seconds is None and lessons.success_ratio is None:
            return "no order in the last 5m" + (f" ({rate})" if rate else "")
        parts = []
        if lessons.p95_seconds is not None:
            parts.append(f"p95 {lessons.p95_seconds:.3g}s")
        if lessons.success_ratio is not None:
            parts.append(f"success {lessons.success_ratio:.1%}")
        if rate:
            parts.append(rate)
        return ", ".join(parts)


# --------------------------------------------------------------------------- the links


def _unreachable(place: Place, error: str) -> tuple[str, str]:
    """(detail, fix) when a call to Prometheus failed."""
    detail = f"Prometheus {place.prometheus_url}: {error}"
    log = place.log(PROMETHEUS_CHILD)
    code = place.exited.get(PROMETHEUS_CHILD)
    if code is not None:
        return detail, f"Prometheus exited (code {code}): its last lines are in {log}"
    return detail, f"check that Prometheus answers at {place.prometheus_url}; its log: {log}"


def _instance(scrape_url: str | None) -> str:
    """`127.0.0.1:8081` of `http://127.0.0.1:8081/metrics`."""
    return urllib.parse.urlsplit(scrape_url or "").netloc or (scrape_url or "")


def _targets(place: Place, status: TargetsStatus | None, error: str | None) -> Link:
    if status is None:
        detail, fix = _unreachable(place, error or "no answer")
        return Link("targets", BROKEN, detail, fix)
    if status.total == 0 and place.starting:
        return Link("targets", OK, "none yet: Prometheus is starting")
    if status.total == 0:
        log = place.log(PROMETHEUS_CHILD)
        return Link(
            "targets",
            BROKEN,
            f'Prometheus has no target {{job="{JOB}"}}',
            f"Prometheus did not load the scrape job of {place.workdir / 'prometheus.yml'}:"
            f" its log {log}",
        )
    if status.up == status.total:
        return Link("targets", OK, f"{status.up}/{status.total} up")
    if status.last_error is None:
        # health "unknown": a target Prometheus has not scraped yet (just started)
        waiting = status.total - status.up
        return Link("targets", OK, f"{status.up}/{status.total} up, {waiting} not scraped yet")
    instance = _instance(status.last_error_target)
    name = place.replicas.get(instance, instance)
    detail = f"{status.up}/{status.total} up; last error ({name}): {status.last_error}"
    log = place.log(name)
    code = place.exited.get(name)
    if code is not None:
        fix = f"{name} ({instance}) exited (code {code}): its last lines are in {log}"
    else:
        fix = (
            f"the scrape of {name} ({instance}) fails: {status.last_error};"
            f" `curl http://{instance}/metrics`, and its log {log}"
        )
    return Link("targets", BROKEN, detail, fix)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _rules(place: Place, status: RulesStatus | None, error: str | None) -> Link:
    rules_file = place.workdir / "rules.yml"
    log = place.log(PROMETHEUS_CHILD)
    if status is None:
        detail, fix = _unreachable(place, error or "no answer")
        return Link("rules", BROKEN, detail, fix)
    if not status.loaded:
        return Link(
            "rules",
            BROKEN,
            f"Prometheus has not loaded {_and(list(status.missing))}",
            f"Prometheus did not load {rules_file}: `promtool check rules {rules_file}`,"
            f" and its log {log}",
        )
    if status.last_error:
        return Link(
            "rules",
            BROKEN,
            f"evaluation fails: {status.last_error}",
            f"a rule of {rules_file} fails to evaluate ({status.last_error}): its log {log}",
        )
    count = sum(g.rules for g in status.groups)
    every = status.evaluation_interval
    every_text = f", every {format_seconds(every)}" if every else ""
    groups = _and([g.name for g in status.groups])
    return Link("rules", OK, f"{groups} loaded ({count} rules{every_text})")


def _alerts(place: Place, status: RulesStatus | None) -> Link:
    if status is None:
        return Link("alerts", SKIPPED, "no rules read")
    by_state: dict[str, dict[str, list[str]]] = {"firing": {}, "pending": {}}
    for alert in status.alerts:
        where = by_state.get(alert.state)
        if where is None:
            continue
        replicas = where.setdefault(alert.name, [])
        replica = _replica_of(place, alert)
        if replica and replica not in replicas:
            replicas.append(replica)
    parts = []
    for state, alerts in by_state.items():
        if alerts:
            names = [
                name + (f" ({', '.join(sorted(r))})" if r else "") for name, r in alerts.items()
            ]
            parts.append(f"{state}: {', '.join(names)}")
    if not parts:
        return Link("alerts", OK, "none pending or firing")
    return Link("alerts", NOTE if by_state["firing"] else OK, "; ".join(parts))


def _replica_of(place: Place, alert: AlertState) -> str | None:
    instance = alert.labels.get("instance")
    if instance is None:
        return None  # an alert over the whole job (the recording rules' ratios)
    return place.replicas.get(instance, instance)


def read_health(snapshot: Snapshot, place: Place, *, now: float | None = None) -> LocalHealth:
    """The links and lesson numbers of one snapshot of the demo's Prometheus."""
    health: PromDemoHealth = snapshot.for_selector(SELECTOR)
    errors = health.errors
    links = (
        _targets(place, health.targets, errors.get("targets")),
        _rules(place, health.rules, errors.get("rules")),
        _alerts(place, health.rules),
    )
    return LocalHealth(
        links=links,
        lessons=health.lessons,
        targets=health.targets,
        rules=health.rules,
        lessons_error=errors.get("lessons"),
        evaluation_interval=health.rules.evaluation_interval if health.rules else None,
        answered=any(part is not None for part in (health.targets, health.rules, health.lessons)),
        read_at=time.time() if now is None else now,
    )
