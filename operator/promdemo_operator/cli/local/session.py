"""What a running `promdemo local` knows: its replicas, their last readings, its counters,
and the last reading of its Prometheus (`health.LocalHealth`).

The loops (`loops.py`) write it, the outputs (`ui.py`) and the banner read it;
it is plain data, so that neither side needs the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from promdemo_operator.cli.local.health import LocalHealth
from promdemo_operator.cli.local.options import HOST, LocalConfig
from promdemo_operator.cli.local.procs import Child

RATE_WINDOW_SECONDS = 10.0  # the request rate shown is over about this long, like rate()[10s]


@dataclass
class ReplicaState:
    """What the last scrape of one replica said, and its request rate over ~10 s."""

    inventory: float | None = None
    resets: float | None = None
    requests_total: float | None = None
    orders_success: float = 0.0
    orders_failed: float = 0.0
    request_rate: float | None = None
    lowest_seen: float | None = None
    heals: int = 0
    last_heal: float | None = None  # epoch seconds
    problem: str = ""
    _history: deque[tuple[float, float]] = field(default_factory=deque, repr=False)

    def update(self, values: dict[str, float], now: float) -> None:
        """A scrape's values (summed over label sets) at monotonic time `now`."""
        self.problem = ""
        self.inventory = values.get("product_inventory")
        self.resets = values.get("inventory_resets_total")
        self.orders_success = values.get("orders_success", 0.0)
        self.orders_failed = values.get("orders_failed", 0.0)
        total = values.get("http_requests_total")
        if total is not None:
            if self._history and total < self._history[-1][1]:
                self._history.clear()  # the replica restarted: its counter too
            self._history.append((now, total))
            while len(self._history) > 2 and now - self._history[1][0] >= RATE_WINDOW_SECONDS:
                self._history.popleft()
            first_time, first_total = self._history[0]
            if now > first_time:
                self.request_rate = (total - first_total) / (now - first_time)
        self.requests_total = total
        if self.inventory is not None:
            self.saw(self.inventory)

    def saw(self, inventory: float) -> None:
        """An inventory value read by anyone (the panel's scrape, the heal engine)."""
        if self.lowest_seen is None or inventory < self.lowest_seen:
            self.lowest_seen = inventory


@dataclass
class Replica:
    """One order-service process: a "pod" with its own inventory."""

    name: str
    port: int
    child: Child
    state: ReplicaState = field(default_factory=ReplicaState)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def instance(self) -> str:
        """Prometheus's `instance` label of this replica."""
        return f"{HOST}:{self.port}"


@dataclass
class DemoState:
    """The whole demo as the outputs show it."""

    config: LocalConfig
    replicas: list[Replica] = field(default_factory=list)
    prometheus_url: str | None = None
    #: the major version of that Prometheus: its UI's query page is /graph (2) or /query (3)
    prometheus_major: int = 2
    #: what that Prometheus says it is (`3.16.0`) and which binary runs it
    prometheus_version: str = ""
    prometheus_binary: str | None = None
    #: False when its UI's query page answers 500 (a build without the web UI's assets)
    prometheus_ui: bool = True
    alertmanager_url: str | None = None
    heal_count: int = 0
    load_round: int = 0
    #: --lessons: the heal loop waits until the learner turns it on
    heal_paused: bool = False
    #: the Prometheus process (None when it does not run), and when it was ready (monotonic)
    prometheus_child: Child | None = None
    prometheus_ready_at: float | None = None
    #: why Prometheus does not run (`--no-prometheus`, not installed...), or None
    prometheus_off: str | None = None
    #: the last reading of Prometheus's targets, rules and lesson numbers
    health: LocalHealth | None = None
    #: how often Prometheus is read for `health` (seconds)
    health_every: float | None = None

    def replica_at(self, instance: str | None) -> Replica | None:
        return next((r for r in self.replicas if r.instance == instance), None)
