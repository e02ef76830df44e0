"""What a reconcile applies or deletes, and when it looks again (pure).

The reconcile (`runtime/handlers/reconcile.py`) makes the API calls; these functions
decide them: which rendered children to apply (the ServiceMonitor and PrometheusRule
only while the API server serves their kinds), which monitoring objects to delete
(those the spec switched off, when the PromDemo owns them: `apply_plan.owned_by`), and
how long to wait before the next reconcile when nothing else wakes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from promdemo_operator.core.reconcile_events import AppliedChild, held_by_namesake
from promdemo_operator.core.reconcile_status import MONITORING_PLURALS

__all__ = [
    "GARBAGE_COLLECTION_RETRY_SECONDS",
    "NOT_OWNED_RETRY_SECONDS",
    "PERMANENT_RETRY_SECONDS",
    "TRANSIENT_RETRY_SECONDS",
    "MonitoringPlan",
    "children_to_apply",
    "failure_retry_seconds",
    "monitoring_plan",
    "retry_after",
]

Child = TypeVar("Child", bound=Mapping[str, Any])

#: Retry delays after a failed API call: soon for transient trouble, slowly otherwise.
TRANSIENT_RETRY_SECONDS = 10.0
PERMANENT_RETRY_SECONDS = 120.0
#: A child still held by a deleted PromDemo of the same name: look again this soon.
GARBAGE_COLLECTION_RETRY_SECONDS = 5.0
#: A child in the way that is someone else's: look again this often (it may not be watched).
NOT_OWNED_RETRY_SECONDS = 120.0


@dataclass(frozen=True)
class MonitoringPlan:
    """The monitoring kinds (ServiceMonitor, PrometheusRule) of one reconcile.

    `wanted`: those the rendered children hold (the spec asks for them); `missing`:
    of those, the ones the API server does not serve (sorted; not applied, reported by
    MonitoringReady); `switched_off`: the served kinds the spec does not ask for, whose
    object the PromDemo owns is deleted (sorted).
    """

    wanted: frozenset[str]
    missing: tuple[str, ...]
    switched_off: tuple[str, ...]


def monitoring_plan(child_kinds: Iterable[str], served: Iterable[str]) -> MonitoringPlan:
    """The plan for children of `child_kinds` when the API server serves `served` kinds."""
    wanted = frozenset(kind for kind in child_kinds if kind in MONITORING_PLURALS)
    served = frozenset(served)
    return MonitoringPlan(
        wanted=wanted,
        missing=tuple(sorted(wanted - served)),
        switched_off=tuple(sorted((set(MONITORING_PLURALS) - wanted) & served)),
    )


def children_to_apply(children: Sequence[Child], plan: MonitoringPlan) -> list[Child]:
    """The rendered children to apply, in render order (the Secret before the Deployment
    that mounts it), without the monitoring objects whose kind is not served."""
    return [child for child in children if child["kind"] not in plan.missing]


def failure_retry_seconds(*, transient: bool) -> float:
    """When to reconcile again after a failed API call (409, 429, 5xx, no connection are
    transient; e.g. 403 is not, and is retried slowly)."""
    return TRANSIENT_RETRY_SECONDS if transient else PERMANENT_RETRY_SECONDS


def retry_after(results: Iterable[AppliedChild], promdemo: str) -> float | None:
    """When to look again after a successful reconcile; None: only when woken.

    A child in the way (`not_owned`) may not be watched (it lacks our labels), so
    nothing would wake the reconcile when it goes: soon when a deleted PromDemo of the
    same name still holds it (the garbage collector is about to remove it), slowly
    when it is someone else's.
    """
    in_the_way = [r for r in results if r.action == "not_owned"]
    if not in_the_way:
        return None
    if any(held_by_namesake(r.object, promdemo) for r in in_the_way):
        return GARBAGE_COLLECTION_RETRY_SECONDS
    return NOT_OWNED_RETRY_SECONDS
