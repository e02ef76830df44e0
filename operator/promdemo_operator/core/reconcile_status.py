"""The PromDemo's status as the reconcile reports it: its keys and its conditions (pure).

The reconcile owns `observedGeneration`, `replicas`, `readyReplicas`, `selector`
and the conditions `Available`, `MonitoringReady`, `SpecValid` and
`PrometheusSelected` (`prometheus/status.py`, like the observation's `TargetsUp`,
`RulesLoaded`, `targets` and `lessons`). The heal loop
owns `inventory`, `lowestInventory`, `healCount` and `lastHeal` (`heal/status.py`);
conditions of other types belong to whoever wrote them. Each function here returns
the wanted values of the reconcile's keys; `status_changes` keeps those that differ
from the current status, which is all that is patched (a resync that found nothing
new writes nothing).

A condition's `lastTransitionTime` changes only when its status does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promdemo_operator.core.names import selector_string

OWN_CONDITIONS = ("Available", "MonitoringReady", "SpecValid", "PrometheusSelected")

#: The monitoring kinds and the plural each is served under (for messages).
MONITORING_PLURALS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


def condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def find_condition(conditions: Any, type_: str) -> Mapping[str, Any] | None:
    for c in conditions or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return None


def merge_conditions(
    existing: Any, updates: list[dict[str, str]], *, now: str
) -> list[dict[str, Any]]:
    """Existing conditions with `updates` applied by type.

    `lastTransitionTime` changes only when a condition's status changes; the
    order is stable (existing ones first, new types appended); conditions of
    types not in `updates` (someone else's) are kept untouched.
    """
    by_type = {u["type"]: u for u in updates}
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for old in existing or []:
        if not isinstance(old, Mapping):
            continue
        type_ = old.get("type")
        if type_ not in by_type:
            result.append(dict(old))
            continue
        seen.add(type_)
        new = dict(by_type[type_])
        same = old.get("status") == new["status"] and old.get("lastTransitionTime")
        new["lastTransitionTime"] = old["lastTransitionTime"] if same else now
        result.append(new)
    for u in updates:
        if u["type"] not in seen:
            result.append({**u, "lastTransitionTime": now})
    return result


def available_condition(desired: int, ready: int) -> dict[str, str]:
    if desired == 0:
        return condition("Available", True, "ScaledToZero", "spec.replicas is 0")
    if ready >= desired:
        return condition("Available", True, "ReplicasReady", f"{ready}/{desired} replicas ready")
    return condition("Available", False, "ReplicasNotReady", f"{ready}/{desired} replicas ready")


def monitoring_condition(wanted: set[str], missing: list[str]) -> dict[str, str]:
    if not wanted:
        return condition(
            "MonitoringReady", True, "MonitoringDisabled",
            "ServiceMonitor and PrometheusRule are switched off in spec.monitoring",
        )  # fmt: skip
    if missing:
        plurals = ", ".join(MONITORING_PLURALS[k] for k in missing)
        return condition(
            "MonitoringReady", False, "MonitoringCRDsMissing",
            f"the API server does not serve monitoring.coreos.com/v1 {plurals} (install the "
            "Prometheus Operator CRDs); the app is deployed without them and they are created "
            "once the CRDs exist",
        )  # fmt: skip
    return condition(
        "MonitoringReady",
        True,
        "MonitoringObjectsApplied",
        f"{' and '.join(sorted(wanted))} applied",
    )


def status_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `wanted` whose value differs from `current` (what to patch)."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def invalid_spec_status(
    current: Mapping[str, Any], *, generation: Any, message: str, now: str
) -> dict[str, Any]:
    """The reconcile's keys for a spec it rejected: `SpecValid=False` with the reason."""
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(
            current.get("conditions"),
            [condition("SpecValid", False, "InvalidSpec", message)],
            now=now,
        ),
    }


def spec_newly_invalid(current: Mapping[str, Any], message: str) -> bool:
    """True when `message` is news: the spec was valid, or invalid for another reason."""
    old = find_condition(current.get("conditions"), "SpecValid")
    return old is None or old.get("status") != "False" or old.get("message") != message


def deployment_counts(deployment: Mapping[str, Any] | None) -> tuple[int, int]:
    """(replicas, readyReplicas) from a Deployment's status; 0 until its controller reports."""
    dstatus = (deployment or {}).get("status") or {}
    return int(dstatus.get("replicas") or 0), int(dstatus.get("readyReplicas") or 0)


def reconciled_status(
    current: Mapping[str, Any],
    *,
    name: str,
    generation: Any,
    desired_replicas: int,
    deployment: Mapping[str, Any] | None,
    monitoring: dict[str, str],
    now: str,
    also: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The reconcile's keys after the children were applied (`also`: more of its conditions)."""
    replicas, ready = deployment_counts(deployment)
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "selector": selector_string(name),
        "conditions": merge_conditions(
            current.get("conditions"),
            [
                available_condition(desired_replicas, ready),
                monitoring,
                condition("SpecValid", True, "SpecAccepted", "the spec is valid"),
                *(also or []),
            ],
            now=now,
        ),
    }


def monitoring_transition(current: Mapping[str, Any], new: Mapping[str, str]) -> str | None:
    """Which Event the change of `MonitoringReady` deserves: "warning", "normal" or None.

    A warning when monitoring objects became impossible (CRDs missing; also on the
    first report), a normal Event when they became possible again.
    """
    old = find_condition(current.get("conditions"), "MonitoringReady")
    if old is not None and old.get("status") == new["status"]:
        return None
    if new["reason"] == "MonitoringCRDsMissing":
        return "warning"
    return "normal" if old is not None else None
