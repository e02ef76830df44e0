"""Adapter: asking each selecting Prometheus about the PromDemos, at a bounded rate.

`PrometheusSnapshots` (one per operator, `memo.context.prometheus`) holds one
`cache.SnapshotCache` per Prometheus asked: one GET of `/api/v1/targets`, one of
`/api/v1/rules` and one lessons query per Prometheus per interval, whatever the
number of PromDemos it selects (a Prometheus that selects none is never asked).
Prometheus objects are reached through the API server's service proxy, at
`runtime/apiserver.locate_prometheus`'s path (prometheus-operator's governing Service
`prometheus-operated`, port `web`), with the operator's own credentials; with
`--prometheus-url` the one Prometheus there is asked instead, without them.

The interval is `--prometheus-interval` (30 s by default), stretched to the
longest evaluation interval of the PromDemos' rule groups that Prometheus reports:
the recorded lesson numbers change no faster.

`observe_loop` is a task of each PromDemo's reconcile daemon: whenever a snapshot is
due (or the reconcile changed what to ask: `ReconcileLoop.observation`) it reads the
snapshots, computes `TargetsUp`, `RulesLoaded`, `status.targets` and
`status.lessons` (`promstatus.health_status`) and patches the status only when one
of them changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import kopf

from promdemo_operator.core.timefmt import rfc3339
from promdemo_operator.prometheus.status import Asked, health_status
from promdemo_operator.runtime.aio import wait_woken
from promdemo_operator.runtime.handlers.context import OperatorContext
from promdemo_operator.runtime.prometheus_snapshots import (
    DUE_SLACK_SECONDS,
    Observation,
    PrometheusSnapshots,
)

log = logging.getLogger("promdemo.prometheus")

#: After an unexpected failure of an observation (a status write refused, ...).
RETRY_SECONDS = 10.0

__all__ = ["Observation", "PrometheusSnapshots", "observe_loop", "observed_status"]


class ObservedLoop(Protocol):
    """What the observe loop needs of a PromDemo's reconcile loop (`reconcile.ReconcileLoop`):
    written as a protocol so that this module does not import the reconcile that runs it."""

    ctx: OperatorContext
    namespace: str
    name: str
    logger: logging.LoggerAdapter
    observation: Observation | None
    observation_changed: asyncio.Event

    async def update_status(
        self, compute: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> None: ...


def observed_status(
    current: Mapping[str, Any],
    observation: Observation,
    asked: Sequence[Asked],
    *,
    namespace: str,
    name: str,
) -> dict[str, Any]:
    """The observe loop's status keys (`promstatus.health_status`) for `observation`."""
    return health_status(
        current,
        namespace=namespace,
        name=name,
        service_monitor=observation.service_monitor,
        prometheus_rule=observation.prometheus_rule,
        replicas=observation.replicas,
        asked=asked,
        not_asked=observation.not_asked,
        now=rfc3339(),
    )


async def observe_once(loop: ObservedLoop, observation: Observation) -> None:
    """Read the snapshots `observation` asks for; patch the status if it changed."""
    ctx = loop.ctx
    asked = await ctx.prometheus.ask(observation) if observation.asks else []
    await loop.update_status(
        lambda current: observed_status(
            current, observation, asked, namespace=loop.namespace, name=loop.name
        )
    )


async def observe_loop(
    loop: ObservedLoop, stopped: kopf.DaemonStopped, halt: asyncio.Future[None]
) -> None:
    """Keep TargetsUp, RulesLoaded, status.targets and status.lessons current (module doc).

    `halt`: the reconcile daemon's `aio.stop_requested(stopped)`.
    """

    ctx = loop.ctx
    while not stopped:
        observation = loop.observation
        loop.observation_changed.clear()
        if observation is None:  # the first reconcile has not decided yet
            await wait_woken(halt, loop.observation_changed, 3600.0)
            continue
        delay: float | None = None
        try:
            await observe_once(loop, observation)
            if observation.asks:
                delay = ctx.prometheus.due_in(observation) + DUE_SLACK_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as e:
            loop.logger.warning("reading Prometheus failed (retry in %.0fs): %s", RETRY_SECONDS, e)
            delay = RETRY_SECONDS
        # Nothing asked: nothing changes until the reconcile says otherwise.
        await wait_woken(halt, loop.observation_changed, 3600.0 if delay is None else delay)


@kopf.on.cleanup()
async def close_prometheus_clients(memo: kopf.Memo, **_: Any) -> None:
    """Close the clients of the snapshot caches at the operator's exit."""
    ctx = memo.get("context")
    if ctx is not None and ctx.prometheus is not None:
        await ctx.prometheus.aclose()
