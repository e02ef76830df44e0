"""The reconcile remembers its own writes until the watches deliver them, and never a
write the watches have already overtaken (a Deployment whose controller wrote its
status while the reconcile was still applying the other children)."""

from __future__ import annotations

from typing import Any

from promdemo_operator.core.watched import child_record
from promdemo_operator.runtime.handlers.context import OperatorContext
from promdemo_operator.runtime.handlers.reconcile import Applied, ReconcileLoop
from promdemo_operator.runtime.handlers.watches import Watched
from promdemo_operator.runtime.kube import UNKNOWN, ApplyResult


def deployment(version: str, ready: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "demo", "resourceVersion": version},
        "spec": {"replicas": 1},
    }
    if ready is not None:
        obj["status"] = {"readyReplicas": ready, "availableReplicas": ready}
    return obj


def loop_with(watched: dict[Any, Any]) -> tuple[ReconcileLoop, OperatorContext]:
    ctx = OperatorContext(options=None, kube=None, pool=None, reconcile_slots=None)  # type: ignore[arg-type]
    body = {"metadata": {"name": "shop", "namespace": "demo"}}
    return ReconcileLoop(ctx, body, Watched(watched, {})), ctx


def index(obj: dict[str, Any]) -> dict[Any, Any]:
    """kopf's index of the children, holding `obj` as the watch delivered it."""
    return {("Deployment", "demo", "shop"): [child_record("Deployment", obj)]}


def remember(loop: ReconcileLoop, known: Any, action: str, answer: dict[str, Any]) -> None:
    applied = Applied(results=[ApplyResult("Deployment", "shop", action, answer)])  # type: ignore[arg-type]
    loop._remember_writes({"Deployment": known}, applied, "demo", "shop")


def test_a_created_child_the_watch_already_delivered_with_its_status_is_not_remembered() -> None:
    # Created at version 10; the controller wrote its status (version 12) and the watch
    # delivered that before the reconcile came back from creating the other children.
    loop, ctx = loop_with(index(deployment("12", ready=1)))
    remember(loop, None, "created", deployment("10"))
    assert ctx.unseen_writes == {}
    assert loop._known("Deployment", "demo", "shop")["status"]["readyReplicas"] == 1


def test_a_created_child_not_delivered_yet_is_remembered_until_the_watch_has_it() -> None:
    loop, ctx = loop_with({})
    remember(loop, None, "created", deployment("10"))
    assert loop._known("Deployment", "demo", "shop")["metadata"]["resourceVersion"] == "10"
    assert ("Deployment", "demo", "shop") in ctx.unseen_writes


def test_a_patch_is_remembered_while_the_watch_still_has_the_version_it_was_planned_on() -> None:
    loop, _ = loop_with(index(deployment("7", ready=1)))
    remember(loop, deployment("7", ready=1), "patched", deployment("9", ready=1))
    assert loop._known("Deployment", "demo", "shop")["metadata"]["resourceVersion"] == "9"
    # ...and forgotten once the watch delivered a later one.
    loop2, ctx2 = loop_with(index(deployment("11", ready=1)))
    remember(loop2, deployment("7", ready=1), "patched", deployment("9", ready=1))
    assert ctx2.unseen_writes == {}


def test_a_write_after_reading_the_api_is_remembered_against_an_older_watch_version() -> None:
    # fresh (every child read from the API): the watch's version says nothing of the plan.
    loop, _ = loop_with(index(deployment("5")))
    remember(loop, UNKNOWN, "patched", deployment("9"))
    assert loop._known("Deployment", "demo", "shop")["metadata"]["resourceVersion"] == "9"
