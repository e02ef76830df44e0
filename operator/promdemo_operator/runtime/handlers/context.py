"""What every kopf handler of the operator shares, reached through kopf's memo.

`promdemo operator` (`runtime/startup.py`) builds one `OperatorContext` and puts it in kopf's
memo as `memo.context` (beside `memo.options` and `memo.kube`); the memo is a
`SharedMemo`, the same object for every handler of every object (kopf would
otherwise copy it per object), so every handler sees the same context:

- `options`: the command line (`--resync-seconds`, `--workers`, ports, ...);
- `kube`: the synchronous API client, and `pool`, the threads sized for its calls
  (`--workers`; also kopf's executor): `await ctx.call(fn, ...)` runs one there;
- `reconcilers`: the wake-up event of each PromDemo's reconcile loop, set by the
  watches when a child changes (`poke`);
- `seen_versions`, `unseen_writes`: what the watches delivered last, and the
  operator's own writes they have not delivered yet (so a reconcile right after
  another does not plan against the state before it);
- `stale` (`refresh`): the PromDemos whose next reconcile must read every child from
  the API instead of the indexes (after an error; after a re-list of the PromDemos'
  watch, or of any child kind's watch: `child_watch_relisted`);
- `heal_loops`: the running heal loops, where the Alertmanager webhook finds its
  target;
- `pod_http`: the HTTP clients every heal loop shares;
- `events`: the per-PromDemo, per-reason rate limit of the Events the handlers post;
- `prometheus`: one snapshot cache per Prometheus asked, shared by every PromDemo
  (`runtime/handlers/prometheus.py`), and `seen_prometheuses` / `seen_namespaces`: what the
  Prometheus and namespace watches delivered last, to tell a change from a re-list.

`kopf run -m promdemo_operator.runtime.handlers` (no `runtime/startup.py`) gets a context with the
default options from the startup handler `ensure_context`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import kopf

from promdemo_operator.core.event_limit import EventLimiter
from promdemo_operator.runtime.kube import Kube
from promdemo_operator.runtime.prometheus_snapshots import PrometheusSnapshots
from promdemo_operator.runtime.ratelimit import TokenBucket

if TYPE_CHECKING:
    from promdemo_operator.runtime.handlers.pod_clients import PodHttpClients
    from promdemo_operator.runtime.options import OperatorOptions

T = TypeVar("T")


class Triggers:
    """One asyncio.Event per key: set (`poke`) to wake the loop that registered it."""

    def __init__(self) -> None:
        self._events: dict[Hashable, asyncio.Event] = {}

    def register(self, key: Hashable) -> asyncio.Event:
        event = asyncio.Event()
        self._events[key] = event
        return event

    def unregister(self, key: Hashable, event: asyncio.Event) -> None:
        if self._events.get(key) is event:
            del self._events[key]

    def poke(self, key: Hashable) -> bool:
        """Wake the loop of `key`; False when there is none (yet)."""
        event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    def poke_namespace(self, namespace: str) -> int:
        """Wake the loops whose key is (namespace, name) in `namespace`."""
        woken = 0
        for key, event in self._events.items():
            if isinstance(key, tuple) and key and key[0] == namespace:
                event.set()
                woken += 1
        return woken

    def poke_all(self) -> int:
        for event in self._events.values():
            event.set()
        return len(self._events)

    def __len__(self) -> int:
        return len(self._events)


#: One re-list of a child kind delivers its objects within this many seconds: the
#: first one refreshes every PromDemo, the rest of the burst nothing more.
RELIST_SECONDS = 10.0


@dataclass
class OperatorContext:
    """The operator-wide state shared by the handlers (see the module docstring)."""

    options: OperatorOptions
    kube: Kube
    pool: ThreadPoolExecutor
    #: Reconciles in progress at once (`--workers`): a reconcile waiting for a thread would
    #: hold its rendered children in memory meanwhile (200 new PromDemos: 200 renders).
    reconcile_slots: asyncio.Semaphore
    reconcilers: Triggers = field(default_factory=Triggers)
    heal_loops: dict[tuple[str, str], Any] = field(default_factory=dict)
    pod_http: PodHttpClients | None = None
    #: resourceVersion of each child last seen by the watches, to tell news from a re-list.
    seen_versions: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: The operator's own writes the watches have not delivered yet, by (kind, namespace,
    #: name): the version written over (None: created) and the object now (None: deleted).
    unseen_writes: dict[tuple[str, str, str], tuple[str | None, Any]] = field(default_factory=dict)
    prometheus: PrometheusSnapshots = field(default=None)  # type: ignore[assignment]
    #: The Prometheus records and namespace labels the watches delivered last.
    seen_prometheuses: dict[tuple[str, str], Any] = field(default_factory=dict)
    seen_namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    #: PromDemos whose next reconcile reads every child from the API, not the watches'
    #: indexes (`refresh`): after a failed reconcile, and after the PromDemo watch re-listed.
    stale: set[tuple[str, str]] = field(default_factory=set)
    #: PromDemos whose heal loop lists the pods from the API once (after a re-list).
    stale_pods: set[tuple[str, str]] = field(default_factory=set)
    #: The PromDemos the watch delivered, to tell a re-list (410 Gone) from a first sight.
    seen_promdemos: set[tuple[str, str]] = field(default_factory=set)
    #: The rate limit of the Events posted on each PromDemo (`runtime/handlers/events.py`).
    events: EventLimiter = field(default_factory=EventLimiter)
    #: When each child kind's re-list last refreshed every PromDemo (monotonic seconds).
    relist_refreshed_at: dict[str, float] = field(default_factory=dict)

    def child_watch_relisted(self, kind: str, now: float) -> bool:
        """The watch of child `kind` listed again (a 410 Gone that the PromDemo watch may
        not have had): a child deleted during its gap is still in kopf's index and never
        comes as a DELETED event, and which PromDemo lost one cannot be told from the
        objects the listing delivers. So every PromDemo reads its children from the API
        once, at the first object of the re-list (its others arrive within
        RELIST_SECONDS and refresh nothing more). True when it did."""
        last = self.relist_refreshed_at.get(kind)
        if last is not None and now - last < RELIST_SECONDS:
            return False
        self.relist_refreshed_at[kind] = now
        for key in self.seen_promdemos:
            self.refresh(key)
        return True

    def refresh(self, key: tuple[str, str]) -> None:
        """Make the next reconcile (and heal check) of PromDemo `key` read from the API,
        and wake the reconcile."""
        self.stale.add(key)
        self.stale_pods.add(key)
        self.reconcilers.poke(key)

    @classmethod
    def create(cls, options: OperatorOptions, kube: Kube | None = None) -> OperatorContext:
        """A context with a pool of `options.workers` threads (and a client sized to match)."""
        pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="promdemo-api")
        kube = kube or Kube.from_default_config(
            pool_size=options.workers,
            limiter=TokenBucket(options.kube_api_qps, options.kube_api_burst),
        )
        return cls(
            options=options,
            kube=kube,
            pool=pool,
            reconcile_slots=asyncio.Semaphore(options.workers),
            prometheus=PrometheusSnapshots(
                kube, url=options.prometheus_url, interval=options.prometheus_interval
            ),
        )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the pool (a blocking API call), awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))


class SharedMemo(kopf.Memo):
    """kopf's memo, shared as is by every object's handlers instead of copied per object.

    kopf copies the operator's memo into each object it sees (every PromDemo, child
    and pod); the handlers keep nothing per object in it, so one is enough.
    """

    def __copy__(self) -> SharedMemo:
        return self


def context_of(memo: Any) -> OperatorContext:
    """The operator's context from a kopf memo (set by `runtime/startup.py` or `ensure_context`)."""
    ctx = memo.get("context") if hasattr(memo, "get") else getattr(memo, "context", None)
    if ctx is None:
        raise RuntimeError("no operator context in kopf's memo (start with `promdemo operator`)")
    return ctx
