"""Adapter: asking each selecting Prometheus about the PromDemos, at a bounded rate.

`PrometheusSnapshots` (one per operator, `memo.context.prometheus`) holds one
`promapi.SnapshotCache` per Prometheus asked: one GET of `/api/v1/targets`, one of
`/api/v1/rules` and one lessons query per Prometheus per interval, whatever the
number of PromDemos it selects (a Prometheus that selects none is never asked).
Prometheus objects are reached through the API server's service proxy, at
`doctor.cluster.locate_prometheus`'s path (prometheus-operator's governing Service
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
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from promdemo_operator import __version__
from promdemo_operator.kube import Kube
from promdemo_operator.promapi import (
    PromAPIError,
    PrometheusAPI,
    Snapshot,
    SnapshotCache,
    evaluation_interval,
)
from promdemo_operator.promstatus import Asked, health_status, record_key
from promdemo_operator.timefmt import rfc3339

if TYPE_CHECKING:
    import httpx

    from promdemo_operator.doctor.cluster import PrometheusPlace

    from .reconcile import ReconcileLoop

log = logging.getLogger("promdemo.prometheus")

USER_AGENT = f"promdemo-operator/{__version__}"
#: Per request to Prometheus (through the proxy or not), connect to last byte.
TIMEOUT_SECONDS = 10.0
#: A PromDemo's observation runs this long after its snapshot is due, so that one
#: caller fetches it and the others find it fresh.
DUE_SLACK_SECONDS = 0.05
#: After an unexpected failure of an observation (a status write refused, ...).
RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Observation:
    """What a PromDemo's observe loop asks, as its reconcile last decided.

    `prometheuses`: the records (`promstatus.prometheus_record`) of the Prometheus
    objects that select it, in order; `every`: every watched Prometheus record (a
    Service shared by several is noted); `by_url`: ask --prometheus-url instead;
    `not_asked`: (reason, message) of the conditions when nothing is asked.
    """

    service_monitor: bool
    prometheus_rule: bool
    replicas: int
    prometheuses: tuple[Mapping[str, Any], ...] = ()
    every: tuple[Mapping[str, Any], ...] = ()
    by_url: bool = False
    not_asked: tuple[str, str] = ("NotSelected", "no Prometheus selects the PromDemo")

    @property
    def asks(self) -> bool:
        wanted = self.service_monitor or self.prometheus_rule
        return wanted and (self.by_url or bool(self.prometheuses))


@dataclass
class _Entry:
    record: Mapping[str, Any] | None  # None: the --prometheus-url
    cache: SnapshotCache
    place: PrometheusPlace | None = None
    api: PrometheusAPI | None = field(default=None, repr=False)


class PrometheusSnapshots:
    """The operator's snapshot caches, one per Prometheus asked (see the module docstring)."""

    def __init__(self, kube: Kube, *, url: str | None, interval: float) -> None:
        self.kube = kube
        self.url = url
        self.interval = interval
        self._client: httpx.AsyncClient | None = None
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()

    def _api_server(self) -> httpx.AsyncClient:
        """The HTTP client of the service proxy: the operator's credentials (built once)."""
        if self._client is None:
            # doctor.cluster (httpx, yaml) is imported when a Prometheus is first asked.
            from promdemo_operator.doctor.cluster import Connection

            configuration = self.kube.api.configuration
            connection = Connection(str(configuration.host).rstrip("/"), "", configuration)
            self._client = connection.client(TIMEOUT_SECONDS, user_agent=USER_AGENT)
        return self._client

    async def _entry(
        self, record: Mapping[str, Any] | None, every: Sequence[Mapping[str, Any]]
    ) -> _Entry:
        key = self.url if record is None else record_key(record)
        assert key is not None
        async with self._lock:  # PromDemos asking at once share one cache
            entry = self._entries.get(key)
            if entry is not None and entry.record == record:
                return entry
            if record is None:
                api = PrometheusAPI(key, timeout=TIMEOUT_SECONDS)
                entry = _Entry(None, SnapshotCache(api, self.interval), api=api)
            else:
                client = self._api_server()
                from promdemo_operator.doctor.cluster import locate_prometheus

                place = await locate_prometheus(client, record, every)
                base = str(client.base_url).rstrip("/") + place.path
                api = PrometheusAPI(base, client=client, timeout=TIMEOUT_SECONDS)
                entry = _Entry(dict(record), SnapshotCache(api, self.interval), place)
            self._entries[key] = entry
            return entry

    def _pace(self, cache: SnapshotCache, snapshot: Snapshot) -> None:
        """Never faster than the PromDemos' rules are evaluated there."""
        evaluated = None
        if snapshot.rules is not None:
            with contextlib.suppress(PromAPIError):
                evaluated = evaluation_interval(snapshot.rules)
        cache.interval = max(self.interval, evaluated or 0.0)

    async def ask(self, observation: Observation) -> list[Asked]:
        """The snapshots of every Prometheus `observation` asks (fetched when due)."""
        targets: list[Mapping[str, Any] | None] = (
            [None] if observation.by_url else list(observation.prometheuses)
        )
        entries = [await self._entry(t, observation.every) for t in targets]
        snapshots = await asyncio.gather(*(e.cache.get() for e in entries))
        asked = []
        for entry, snapshot in zip(entries, snapshots, strict=True):
            self._pace(entry.cache, snapshot)
            if entry.place is None:
                asked.append(Asked(str(self.url), snapshot))
            else:
                place = entry.place
                asked.append(
                    Asked(place.prometheus, snapshot, place.namespace, place.service, place.notes)
                )
        return asked

    def due_in(self, observation: Observation) -> float:
        """Seconds until the first of `observation`'s snapshots is due."""
        if observation.by_url:
            keys = [self.url]
        else:
            keys = [record_key(r) for r in observation.prometheuses]
        dues = [self._entries[k].cache.due_in() for k in keys if k in self._entries]
        return min(dues) if dues else 0.0

    def forget(self, key: str) -> None:
        """A Prometheus object changed or went: its place is found again when next asked."""
        self._entries.pop(key, None)

    async def aclose(self) -> None:
        for entry in self._entries.values():
            if entry.api is not None and entry.record is None:
                await entry.api.aclose()
        self._entries.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


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


async def observe_once(loop: ReconcileLoop, observation: Observation) -> None:
    """Read the snapshots `observation` asks for; patch the status if it changed."""
    ctx = loop.ctx
    asked = await ctx.prometheus.ask(observation) if observation.asks else []
    await loop.update_status(
        lambda current: observed_status(
            current, observation, asked, namespace=loop.namespace, name=loop.name
        )
    )


async def observe_loop(
    loop: ReconcileLoop, stopped: kopf.DaemonStopped, halt: asyncio.Future[None]
) -> None:
    """Keep TargetsUp, RulesLoaded, status.targets and status.lessons current (module doc).

    `halt`: the reconcile daemon's `reconcile.stop_requested(stopped)`.
    """
    from .reconcile import wait_woken

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
