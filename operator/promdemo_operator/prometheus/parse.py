"""What a Prometheus says about each PromDemo, read from its HTTP API's JSON (pure).

Each function reads one answer, for one PromDemo picked out by its label selector
(`promdemo_selector`: under prometheus-operator a ServiceMonitor's `job` label is the
Service's name, so `{namespace, job}`; the plain rules file of `promdemo local` uses
`{job}`):

- `targets_status(GET /api/v1/targets)`: targets up / total and the last error;
- `rules_status(GET /api/v1/rules)`: whether the PromDemo's rule groups
  (core/rules.py's `promdemo.recording` and `promdemo.alerts`, recognised by the
  selector matchers in their expressions, since every PromDemo's groups share
  those names) are loaded, their last evaluation error, and their alerts;
- `lessons(GET /api/v1/query?query=LESSONS_QUERY)`: p95 latency, success ratio
  and request rate read from the recording rules.

A `Snapshot` holds one answer of each (what `prometheus/client.py` fetches, once per
interval with `prometheus/cache.py`) and answers for every PromDemo. No I/O here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promdemo_operator.core.rules import (
    ALERTING_GROUP,
    RECORD_P95,
    RECORD_REQUEST_RATE,
    RECORD_SUCCESS_RATIO,
    RECORDING_GROUP,
)

__all__ = [
    "LESSONS_QUERY",
    "PROMDEMO_GROUPS",
    "RECORDED",
    "AlertState",
    "Lessons",
    "PromAPIError",
    "PromDemoHealth",
    "RuleGroupStatus",
    "RulesStatus",
    "Snapshot",
    "TargetsStatus",
    "evaluation_interval",
    "lessons",
    "promdemo_selector",
    "response_data",
    "rules_status",
    "targets_status",
]

#: The recording rules (core/rules.py) that hold the lesson numbers.
RECORDED = {
    "p95_seconds": RECORD_P95,
    "success_ratio": RECORD_SUCCESS_RATIO,
    "request_rate": RECORD_REQUEST_RATE,
}
#: One instant query for the numbers of every PromDemo a Prometheus holds.
LESSONS_QUERY = '{__name__=~"' + "|".join(re.escape(n) for n in RECORDED.values()) + '"}'
PROMDEMO_GROUPS = (RECORDING_GROUP, ALERTING_GROUP)


class PromAPIError(Exception):
    """Prometheus could not answer (unreachable, an error status, a body not understood)."""


def promdemo_selector(namespace: str | None, name: str) -> dict[str, str]:
    """The labels of PromDemo `namespace/name`'s series: what its rules select on too.

    Under prometheus-operator `job` is the Service's name (the PromDemo's) and
    `namespace` its namespace; `namespace=None` is a plain Prometheus (one job).
    """
    if namespace is None:
        return {"job": name}
    return {"namespace": namespace, "job": name}


def response_data(body: Any, what: str) -> Any:
    """The `data` of a Prometheus API answer; PromAPIError when it is not a success."""
    if not isinstance(body, Mapping) or body.get("status") != "success" or "data" not in body:
        error = body.get("error") if isinstance(body, Mapping) else None
        raise PromAPIError(f"{what}: {error or 'not a successful Prometheus API response'}")
    return body["data"]


def _matches(labels: Any, selector: Mapping[str, str]) -> bool:
    return isinstance(labels, Mapping) and all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class TargetsStatus:
    """The PromDemo's scrape targets: how many are up, and the last scrape error seen."""

    up: int
    total: int
    last_error: str | None = None
    last_error_target: str | None = None  # the scrape URL of the target with that error

    def as_status(self) -> dict[str, Any]:
        """`status.targets`: `up`, `total` and, when a target fails, `lastError`."""
        status: dict[str, Any] = {"up": self.up, "total": self.total}
        if self.last_error:
            status["lastError"] = self.last_error
        return status


def targets_status(body: Any, selector: Mapping[str, str]) -> TargetsStatus:
    """From GET /api/v1/targets (state=active or not): the targets carrying `selector`."""
    data = response_data(body, "/api/v1/targets")
    active = (data.get("activeTargets") or []) if isinstance(data, Mapping) else []
    mine = [t for t in active if isinstance(t, Mapping) and _matches(t.get("labels"), selector)]
    up = sum(1 for t in mine if t.get("health") == "up")
    failing = [t for t in mine if t.get("health") != "up" and t.get("lastError")]
    if not failing:
        return TargetsStatus(up, len(mine))
    # the most recent failure first (RFC 3339 timestamps sort as text)
    last = max(failing, key=lambda t: str(t.get("lastScrape") or ""))
    return TargetsStatus(
        up,
        len(mine),
        last_error=str(last["lastError"]),
        last_error_target=str(last.get("scrapeUrl") or last["labels"].get("instance") or ""),
    )


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class AlertState:
    """An active (pending or firing) alert of a PromDemo's rules."""

    name: str
    state: str  # pending | firing
    labels: Mapping[str, str]
    active_at: str | None
    value: str | None


@dataclass(frozen=True)
class RuleGroupStatus:
    """One loaded rule group: its rules, their evaluation errors, when it last ran."""

    name: str
    file: str
    rules: int
    errors: tuple[tuple[str, str], ...]  # (rule name, lastError) of rules whose health is not ok
    last_evaluation: str | None
    interval_seconds: float | None


@dataclass(frozen=True)
class RulesStatus:
    """The PromDemo's rule groups as Prometheus has loaded them."""

    expected: tuple[str, ...]
    groups: tuple[RuleGroupStatus, ...]
    alerts: tuple[AlertState, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        found = {g.name for g in self.groups}
        return tuple(name for name in self.expected if name not in found)

    @property
    def loaded(self) -> bool:
        """Every expected group is loaded (its last evaluation may still have failed)."""
        return not self.missing

    @property
    def last_error(self) -> str | None:
        """`rule: error` of the first rule whose last evaluation failed, or None."""
        for group in self.groups:
            for rule, error in group.errors:
                return f"{rule}: {error}"
        return None

    @property
    def evaluation_interval(self) -> float | None:
        """The longest interval of the groups: reading the numbers faster gains nothing."""
        intervals = [g.interval_seconds for g in self.groups if g.interval_seconds]
        return max(intervals) if intervals else None

    @property
    def firing(self) -> tuple[AlertState, ...]:
        return tuple(a for a in self.alerts if a.state == "firing")


def _mentions(query: str, selector: Mapping[str, str]) -> bool:
    """The PromQL `query` has an equality matcher for every pair of `selector`."""
    return all(
        re.search(rf'(?<![\w]){re.escape(k)}\s*=\s*"{re.escape(v)}"', query)
        for k, v in selector.items()
    )


def _group_is_mine(group: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    rules = group.get("rules") or []
    queries = [str(r.get("query", "")) for r in rules if isinstance(r, Mapping)]
    return bool(queries) and all(_mentions(q, selector) for q in queries)


def rules_status(
    body: Any,
    selector: Mapping[str, str],
    expected: Iterable[str] = PROMDEMO_GROUPS,
) -> RulesStatus:
    """From GET /api/v1/rules: the groups named in `expected` whose rules all select `selector`."""
    expected = tuple(expected)
    data = response_data(body, "/api/v1/rules")
    groups = (data.get("groups") or []) if isinstance(data, Mapping) else []
    found: list[RuleGroupStatus] = []
    alerts: list[AlertState] = []
    for group in groups:
        if not isinstance(group, Mapping) or group.get("name") not in expected:
            continue
        if not _group_is_mine(group, selector):
            continue
        rules = [r for r in group.get("rules") or [] if isinstance(r, Mapping)]
        errors = tuple(
            (str(r.get("name")), str(r.get("lastError") or r.get("health")))
            for r in rules
            if r.get("health") not in (None, "ok", "unknown")
        )
        interval = group.get("interval")
        found.append(
            RuleGroupStatus(
                name=str(group["name"]),
                file=str(group.get("file", "")),
                rules=len(rules),
                errors=errors,
                last_evaluation=group.get("lastEvaluation"),
                interval_seconds=float(interval) if isinstance(interval, (int, float)) else None,
            )
        )
        for rule in rules:
            for alert in rule.get("alerts") or []:
                if isinstance(alert, Mapping):
                    alerts.append(
                        AlertState(
                            name=str(rule.get("name")),
                            state=str(alert.get("state")),
                            labels=dict(alert.get("labels") or {}),
                            active_at=alert.get("activeAt"),
                            value=alert.get("value"),
                        )
                    )
    return RulesStatus(expected, tuple(found), tuple(alerts))


def evaluation_interval(body: Any, expected: Iterable[str] = PROMDEMO_GROUPS) -> float | None:
    """The longest evaluation interval (seconds) of the groups named `expected`, of any PromDemo.

    What the recorded lesson numbers cannot change faster than; None when none is loaded.
    """
    names = set(expected)
    data = response_data(body, "/api/v1/rules")
    groups = (data.get("groups") or []) if isinstance(data, Mapping) else []
    intervals = [
        float(g["interval"])
        for g in groups
        if isinstance(g, Mapping)
        and g.get("name") in names
        and isinstance(g.get("interval"), (int, float))
        and g["interval"] > 0
    ]
    return max(intervals) if intervals else None


# --------------------------------------------------------------------------- lessons


@dataclass(frozen=True)
class Lessons:
    """The numbers the tutorial teaches, from the recording rules; None where there is none yet.

    `p95_seconds` and `success_ratio` are NaN in Prometheus before any order
    (0/0): they read as None here.
    """

    p95_seconds: float | None = None
    success_ratio: float | None = None
    request_rate: float | None = None
    at: float | None = None  # the query's evaluation time (Unix seconds)

    @property
    def empty(self) -> bool:
        return self.p95_seconds is None and self.success_ratio is None and self.request_rate is None

    def as_status(self) -> dict[str, Any]:
        """`status.lessons`: the numbers that exist, rounded for reading."""
        status: dict[str, Any] = {}
        if self.p95_seconds is not None:
            status["p95Seconds"] = round(self.p95_seconds, 4)
        if self.success_ratio is not None:
            status["successRatio"] = round(self.success_ratio, 4)
        if self.request_rate is not None:
            status["requestsPerSecond"] = round(self.request_rate, 3)
        return status


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def lessons(body: Any, selector: Mapping[str, str]) -> Lessons:
    """From an instant query of LESSONS_QUERY: the series of the PromDemo `selector` picks."""
    data = response_data(body, "/api/v1/query")
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        raise PromAPIError("/api/v1/query: expected an instant vector")
    names = {metric: key for key, metric in RECORDED.items()}
    values: dict[str, float | None] = {}
    at: float | None = None
    for sample in data.get("result") or []:
        metric = sample.get("metric") if isinstance(sample, Mapping) else None
        if not _matches(metric, selector):
            continue
        key = names.get(str(metric.get("__name__")))
        pair = sample.get("value")
        if key is None or key in values or not isinstance(pair, list) or len(pair) != 2:
            continue
        values[key] = _number(pair[1])
        at = _number(pair[0])
    return Lessons(**values, at=at)


# --------------------------------------------------------------------------- one Prometheus, once


@dataclass(frozen=True)
class PromDemoHealth:
    """Targets, rules and lessons of one PromDemo; a part is None when its call failed."""

    targets: TargetsStatus | None
    rules: RulesStatus | None
    lessons: Lessons | None
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """One answer of /api/v1/targets, /api/v1/rules and the lessons query: for every PromDemo.

    A part whose call failed is None, with its error in `errors`
    (`{"targets": "...", "rules": "...", "lessons": "..."}`).
    """

    targets: Mapping[str, Any] | None
    rules: Mapping[str, Any] | None
    lessons: Mapping[str, Any] | None
    errors: Mapping[str, str] = field(default_factory=dict)

    def for_selector(self, selector: Mapping[str, str]) -> PromDemoHealth:
        errors = dict(self.errors)
        parts: dict[str, Any] = {}
        for part, body, read in (
            ("targets", self.targets, targets_status),
            ("rules", self.rules, rules_status),
            ("lessons", self.lessons, lessons),
        ):
            parts[part] = None
            if body is not None:
                try:
                    parts[part] = read(body, selector)
                except PromAPIError as exc:
                    errors[part] = str(exc)
        return PromDemoHealth(**parts, errors=errors)

    def for_promdemo(self, namespace: str | None, name: str) -> PromDemoHealth:
        return self.for_selector(promdemo_selector(namespace, name))
