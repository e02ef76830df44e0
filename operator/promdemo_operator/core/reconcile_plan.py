"""What a reconcile applies or deletes, and when it looks again (pure).

The reconcile (`runtime/handlers/reconcile.py`) makes the API calls; these functions
decide them: which rendered children to apply (the ServiceMonitor and PrometheusRule
only while the API server serves their kinds), which monitoring objects to delete
(those the spec switched off, when the PromDemo owns them: `apply_plan.owned_by`), and
how long to wait before the next reconcile when nothing else wakes it, and which of
its own writes the next reconcile plans against until the watches deliver them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from promdemo_operator.core.names import secret_name
from promdemo_operator.core.reconcile_events import AppliedChild, held_by_namesake
from promdemo_operator.core.reconcile_status import MONITORING_PLURALS

__all__ = [
    "GARBAGE_COLLECTION_RETRY_SECONDS",
    "NOT_OWNED_RETRY_SECONDS",
    "PERMANENT_RETRY_SECONDS",
    "TRANSIENT_RETRY_SECONDS",
    "ChildKey",
    "MonitoringPlan",
    "children_of",
    "children_to_apply",
    "failure_retry_seconds",
    "monitoring_plan",
    "resource_version",
    "retry_after",
    "writes_to_remember",
]

Child = TypeVar("Child", bound=Mapping[str, Any])
#: A child by (kind, namespace, name).
ChildKey = tuple[str, str, str]

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


def resource_version(obj: Any) -> str | None:
    """`metadata.resourceVersion` of an object; None for no object (or not one)."""
    if not isinstance(obj, Mapping):
        return None
    return (obj.get("metadata") or {}).get("resourceVersion")


def writes_to_remember(
    results: Iterable[AppliedChild],
    deleted: Iterable[str],
    known: Mapping[str, Any],
    *,
    namespace: str,
    promdemo: str,
    delivered: Mapping[ChildKey, str | None],
    unknown: Collection[str] = (),
) -> dict[ChildKey, tuple[str | None, Any]]:
    """The reconcile's own writes that the watches have not delivered yet, by child:
    the version each wrote over (None: it created the object) and the object now (None:
    it deleted it). Until the watches deliver them, the next reconcile plans against
    these rather than against the state before them.

    `known`: kind → the object the reconcile planned against; `delivered`: the
    resourceVersion the watches hold of a child (absent: they hold none); `unknown`: the
    kinds planned without knowing the object. A write the watches already delivered is
    not remembered, nor one they overtook: a version delivered after the one the write
    was planned against is this write or a later one (a Deployment's status, written by
    its controller while the other children were still being applied), and remembering
    the write's answer would plan, and report, against an older object until the child
    changes again. Deleted kinds are monitoring objects, named after the PromDemo.
    """
    writes: dict[ChildKey, tuple[str | None, Any]] = {}
    for result in results:
        if result.action not in ("created", "patched"):
            continue
        key = (result.kind, namespace, result.name)
        seen = delivered.get(key)
        if seen is not None and seen == resource_version(result.object):
            continue  # already delivered
        planned = known.get(result.kind)
        if seen is not None and result.kind not in unknown and seen != resource_version(planned):
            continue  # overtaken by what the watch delivered
        before = None if result.action == "created" else resource_version(known.get(result.kind))
        writes[key] = (before, result.object)
    for kind in deleted:
        writes[(kind, namespace, promdemo)] = (resource_version(known.get(kind)), None)
    return writes


def children_of(keys: Iterable[ChildKey], namespace: str, promdemo: str) -> list[ChildKey]:
    """The keys among `keys` of PromDemo `namespace/promdemo`'s children (named after it, and
    its reset-token Secret): what a reconcile reading every child from the API forgets."""
    ours = {promdemo, secret_name(promdemo)}
    return [key for key in keys if key[1] == namespace and key[2] in ours]
