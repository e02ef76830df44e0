"""A watch gap (410 Gone, then a re-list) must not leave the reconcile trusting kopf's
indexes: kopf never drops an object that vanished during the gap, so a PromDemo
listed again makes its next reconcile read every child from the API, and its heal
loop list the pods once."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from promdemo_operator.heal.pods import PodRecord
from promdemo_operator.runtime.handlers.context import RELIST_SECONDS, OperatorContext
from promdemo_operator.runtime.handlers.heal import HealLoop
from promdemo_operator.runtime.handlers.watches import Watched, child_changed, promdemo_listed


def context() -> OperatorContext:
    return OperatorContext(options=None, kube=None, pool=None, reconcile_slots=None)  # type: ignore[arg-type]


def deliver(ctx: OperatorContext, type_: str | None, name: str = "shop") -> None:
    event: dict[str, Any] = {"type": type_, "object": {}}
    asyncio.run(promdemo_listed(event=event, namespace="demo", name=name,
                                memo={"context": ctx}))  # type: ignore[arg-type]  # fmt: skip


def test_the_first_listing_and_watch_events_read_the_indexes() -> None:
    ctx = context()
    deliver(ctx, None)  # the listing at start
    deliver(ctx, "MODIFIED")
    deliver(ctx, "ADDED", name="new")
    assert ctx.stale == set()


def test_a_promdemo_listed_again_reads_its_children_from_the_api_and_is_woken() -> None:
    ctx = context()
    woken = ctx.reconcilers.register(("demo", "shop"))
    deliver(ctx, None)
    deliver(ctx, None)  # listed again: the watch broke off with 410 Gone
    assert ctx.stale == {("demo", "shop")}
    assert woken.is_set()


def test_a_deleted_promdemo_is_forgotten() -> None:
    ctx = context()
    deliver(ctx, "ADDED")
    deliver(ctx, "DELETED")
    deliver(ctx, None)  # a new PromDemo of the same name, first seen in a listing
    assert ctx.stale == set()
    assert ctx.seen_promdemos == {("demo", "shop")}


def deliver_child(ctx: OperatorContext, type_: str | None, owner: str, version: str) -> None:
    """A Service event of the child watch: the Service `owner` of PromDemo demo/`owner`."""
    body = {"metadata": {
        "name": owner, "namespace": "demo", "resourceVersion": version,
        "ownerReferences": [{"apiVersion": "promdemo.dev/v1alpha1", "kind": "PromDemo",
                             "name": owner, "uid": f"uid-{owner}", "controller": True}],
    }}  # fmt: skip
    asyncio.run(child_changed(event={"type": type_, "object": body}, body=body,  # type: ignore[arg-type]
                              resource=kopf.Resource("", "v1", "services"),
                              memo={"context": ctx}))  # fmt: skip


def test_a_child_watch_listed_again_alone_makes_every_promdemo_read_the_api_once() -> None:
    """The Service watch had a gap (410 Gone) that the PromDemo watch did not: the shop's
    Service deleted in it is still indexed and no DELETED event comes. The re-list shows
    only the objects left (the cart's Service), so every PromDemo reads from the API."""
    ctx = context()
    for name in ("shop", "cart"):
        deliver(ctx, None, name=name)  # the PromDemos, listed at start
        deliver_child(ctx, None, name, "1")  # their Services, listed at start
    woken = ctx.reconcilers.register(("demo", "shop"))
    assert ctx.stale == set()
    deliver_child(ctx, "MODIFIED", "cart", "2")  # a watch event: news, no re-list
    assert ctx.stale == set()
    deliver_child(ctx, None, "cart", "2")  # the Service watch listed again
    assert ctx.stale == {("demo", "shop"), ("demo", "cart")}
    assert woken.is_set()
    # The rest of the same re-list refreshes nothing more.
    ctx.stale.clear()
    deliver_child(ctx, None, "cart", "2")
    assert ctx.stale == set()


def test_a_later_re_list_of_the_child_watch_refreshes_again() -> None:
    ctx = context()
    deliver(ctx, None)
    deliver_child(ctx, None, "shop", "1")
    now = time.monotonic()
    assert ctx.child_watch_relisted("Service", now)
    assert not ctx.child_watch_relisted("Service", now + 1)
    assert ctx.child_watch_relisted("Deployment", now + 1)  # another kind: its own re-list
    assert ctx.child_watch_relisted("Service", now + RELIST_SECONDS + 1)


class ListingKube:
    """Answers a pod listing with the pods named at construction."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.paths: list[str] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        self.paths.append(f"{method} {path}")
        return {"items": [{"metadata": {"name": n}} for n in self.names]}


def test_after_a_re_list_the_heal_loop_leaves_out_pods_the_api_no_longer_has() -> None:
    kube = ListingKube(["shop-new"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        ctx = OperatorContext(options=None, kube=kube, pool=pool, reconcile_slots=None)  # type: ignore[arg-type]
        indexed = [PodRecord("shop-old", "10.0.0.1", True, 8080),  # deleted in the gap
                   PodRecord("shop-new", "10.0.0.2", True, 8080)]  # fmt: skip
        loop = HealLoop("demo", "shop", ctx=ctx, watched=Watched({}, {("demo", "shop"): indexed}))
        asyncio.run(loop.forget_gone_pods())
        assert kube.paths == [], "no re-list: the index is trusted, nothing is read"
        ctx.refresh(("demo", "shop"))
        asyncio.run(loop.forget_gone_pods())
        asyncio.run(loop.forget_gone_pods())  # once per re-list
    assert kube.paths == [
        "GET /api/v1/namespaces/demo/pods?labelSelector="
        "app.kubernetes.io/name%3Dpromdemo%2Capp.kubernetes.io/instance%3Dshop"
    ]
    assert loop._gone == {"shop-old"}
