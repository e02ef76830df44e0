"""A watch gap (410 Gone, then a re-list) must not leave the reconcile trusting kopf's
indexes: kopf never drops an object that vanished during the gap, so a PromDemo
listed again makes its next reconcile read every child from the API."""

from __future__ import annotations

import asyncio
from typing import Any

from promdemo_operator.handlers.context import OperatorContext
from promdemo_operator.handlers.watches import promdemo_listed


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
