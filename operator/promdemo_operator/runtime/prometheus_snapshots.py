"""One snapshot cache per Prometheus the operator asks (through the API server's service
proxy, or the one at --prometheus-url): what each PromDemo's observation asks for, and
when it is due. The observe loop (`runtime/handlers/prometheus.py`) reads it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promdemo_operator import __version__
from promdemo_operator.prometheus.cache import SnapshotCache
from promdemo_operator.prometheus.client import PrometheusAPI
from promdemo_operator.prometheus.parse import PromAPIError, Snapshot, evaluation_interval
from promdemo_operator.prometheus.status import Asked, record_key
from promdemo_operator.runtime.kube import Kube

if TYPE_CHECKING:
    import httpx

    from promdemo_operator.runtime.apiserver import PrometheusPlace


USER_AGENT = f"promdemo-operator/{__version__}"


#: Per request to Prometheus (through the proxy or not), connect to last byte.
TIMEOUT_SECONDS = 10.0


#: A PromDemo's observation runs this long after its snapshot is due, so that one
#: caller fetches it and the others find it fresh.
DUE_SLACK_SECONDS = 0.05


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
            # runtime/apiserver.py (httpx) is imported when a Prometheus is first asked.
            from promdemo_operator.runtime.apiserver import Connection

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
                from promdemo_operator.runtime.apiserver import locate_prometheus

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
