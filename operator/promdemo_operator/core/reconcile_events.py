"""Which Events a reconcile posts on the PromDemo, decided from what it saw and did (pure).

The reconcile (`runtime/handlers/reconcile.py`) posts what these functions return,
and nothing else: children created, updated (a drift repaired) or deleted, a
replicas count another writer set and the reconcile set back, the spec invalid, a child in the way
that is not the PromDemo's, MonitoringReady going False or back, the PromDemo
becoming selected by a Prometheus or not any more, an API call refused for good.
Each Event is news: a resync that finds nothing new posts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from promdemo_operator.core.reconcile_status import monitoring_transition, spec_newly_invalid
from promdemo_operator.core.watched import controller_promdemo

__all__ = [
    "AppliedChild",
    "Event",
    "child_events",
    "failure_event",
    "held_by_namesake",
    "invalid_spec_event",
    "monitoring_event",
    "not_owned_event",
    "replicas_overridden",
    "replicas_set_back_event",
    "selection_changed",
    "selection_event",
]

#: An applied child's action → the Event's reason (and verb) for it.
_ACTION_EVENTS = {"created": "Created", "patched": "Updated"}


@dataclass(frozen=True)
class Event:
    """One Kubernetes Event on the PromDemo: `Normal` or `Warning`, a reason, a message."""

    type: str
    reason: str
    message: str

    @classmethod
    def normal(cls, reason: str, message: str) -> Event:
        return cls("Normal", reason, message)

    @classmethod
    def warning(cls, reason: str, message: str) -> Event:
        return cls("Warning", reason, message)


class AppliedChild(Protocol):
    """What the reconcile did to one child (`runtime.kube.ApplyResult` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def object(self) -> Mapping[str, Any]: ...


def invalid_spec_event(current: Mapping[str, Any], message: str) -> Event | None:
    """The `InvalidSpec` Warning when the spec's problem is news: it was valid, or invalid
    for another reason (`message` is the SpecError's one line); None otherwise."""
    return Event.warning("InvalidSpec", message) if spec_newly_invalid(current, message) else None


def child_events(
    results: Iterable[AppliedChild], deleted: Iterable[str], promdemo: str
) -> list[Event]:
    """One Event per action of a reconcile, naming every child it did ("Created Secret
    shop-reset-token, Deployment shop, ..."): an Event is a request, and a new PromDemo
    creates five children. Then one per monitoring object deleted (named after the
    PromDemo) because the spec switched it off."""
    results = list(results)
    events = []
    for action, verb in _ACTION_EVENTS.items():
        done = [f"{r.kind} {r.name}" for r in results if r.action == action]
        if done:
            events.append(Event.normal(verb, f"{verb} {', '.join(done)}"))
    for kind in deleted:
        events.append(
            Event.normal("Deleted", f"Deleted {kind} {promdemo} (switched off in spec.monitoring)")
        )
    return events


def replicas_overridden(
    *,
    deployment_patched: bool,
    before: Any,
    generation: Any,
    observed_generation: Any,
    spec_replicas: int,
) -> int | None:
    """The replicas count another writer gave the Deployment that the reconcile just set
    back to `spec_replicas`, or None when there was none.

    `before`: the Deployment as it was before the reconcile patched it. A patch that
    follows a change of the PromDemo's own spec (its generation not observed yet) is an
    update, not a revert.
    """
    if not deployment_patched or not isinstance(before, Mapping):
        return None
    if observed_generation != generation:
        return None
    theirs = (before.get("spec") or {}).get("replicas")
    if theirs is None or theirs == spec_replicas:
        return None
    return theirs


def replicas_set_back_event(promdemo: str, theirs: Any, spec_replicas: int) -> Event:
    """The Warning that a replicas count set outside the PromDemo was set back, and how to
    scale it instead."""
    return Event.warning(
        "ReplicasSetBack",
        f"Deployment {promdemo} was scaled to {theirs} outside the PromDemo and set back to "
        f"spec.replicas={spec_replicas}: the PromDemo owns the replica count; scale it with "
        f"`kubectl scale promdemo/{promdemo} --replicas=N` (or point an HPA at the PromDemo)",
    )


def held_by_namesake(obj: Mapping[str, Any], promdemo: str) -> bool:
    """True when `obj` is controlled by a PromDemo of this name: a deleted one whose
    children the garbage collector has not removed yet (the live one would own it)."""
    owner = controller_promdemo(obj)
    return owner is not None and owner[0] == promdemo


def not_owned_event(child: AppliedChild, promdemo: str) -> Event | None:
    """The Warning for a child in the way that is someone else's; None for one still held
    by a deleted PromDemo of the same name (the garbage collector removes it)."""
    if held_by_namesake(child.object, promdemo):
        return None
    return Event.warning(
        "NotOwned",
        f"{child.kind} {child.name} exists and is not controlled by this PromDemo; "
        "it is left as it is (delete it, or rename the PromDemo)",
    )


def monitoring_event(current: Mapping[str, Any], new: Mapping[str, str]) -> Event | None:
    """A Warning when monitoring objects became impossible (the CRDs missing; also at the
    first report), a Normal Event when they became possible again; else None."""
    transition = monitoring_transition(current, new)
    if transition == "warning":
        return Event.warning("MonitoringCRDsMissing", new["message"])
    if transition == "normal":
        return Event.normal(new["reason"], new["message"])
    return None


def selection_changed(old: Mapping[str, Any] | None, new: Mapping[str, str]) -> bool:
    """True when `PrometheusSelected` (`old`, None before the first report) changes its
    status or its message (why)."""
    return old is None or (old.get("status"), old.get("message")) != (
        new["status"],
        new["message"],
    )


def selection_event(old: Mapping[str, Any] | None, new: Mapping[str, str]) -> Event | None:
    """An Event when the PromDemo becomes selected, or not (or why not changes).

    A PromDemo that nothing selects gets the Warning from its first report on (what to
    fix); one selected from the start (`old` None) gets no Event for it; Unknown (no
    prometheus-operator to ask) gets none.
    """
    if not selection_changed(old, new):
        return None
    if new["status"] == "True":
        return None if old is None else Event.normal("PrometheusSelected", new["message"])
    if new["status"] == "False":
        return Event.warning("PrometheusNotSelected", new["message"])
    return None


def failure_event(message: str, *, transient: bool) -> Event | None:
    """A failed API call: a `ReconcileFailed` Warning when retrying soon will not help
    (e.g. 403); None for transient trouble (409, 429, 5xx, no connection)."""
    return None if transient else Event.warning("ReconcileFailed", message)
