"""What `promdemo local` shows: a live rich panel on a terminal, plain lines otherwise.

Both outputs take the same calls: `banner` once at start, `event` for what
happened (a heal, a load round, an alert), `status` after every scrape of the
replicas, `warn`/`error` for one-line problems on stderr.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .local import LocalDemo

PLAIN_STATUS_SECONDS = 5.0
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
    last_heal: float | None = None
    problem: str = ""
    _history: deque[tuple[float, float]] = field(default_factory=deque, repr=False)

    def update(self, values: dict[str, float], now: float) -> None:
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


def _num(value: float | None, fmt: str = "g") -> str:
    return "-" if value is None else format(value, fmt)


class Output:
    """The interface both outputs implement."""

    def banner(self, lines: list[str]) -> None:
        for line in lines:
            print(line, flush=True)

    def event(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def warn(self, message: str) -> None:
        print(f"promdemo local: {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"promdemo local: {message}", file=sys.stderr, flush=True)

    def start(self, demo: LocalDemo) -> None:
        """The demo is running (after the banner)."""

    def status(self, demo: LocalDemo) -> None:
        """Called after every scrape of the replicas."""

    def stop(self) -> None:
        """The demo is stopping."""

    def refresh_seconds(self, interval: float) -> float:
        return 1.0


class PlainOutput(Output):
    """Periodic log lines (not a terminal, or --no-ui)."""

    def __init__(self) -> None:
        self._last_status = 0.0

    def refresh_seconds(self, interval: float) -> float:
        return 1.0

    def status(self, demo: LocalDemo) -> None:
        now = time.monotonic()
        if now - self._last_status < PLAIN_STATUS_SECONDS:
            return
        self._last_status = now
        parts = []
        for r in demo.replicas:
            s = r.state
            rate = "-" if s.request_rate is None else f"{s.request_rate:.1f}"
            part = f"{r.name} inventory {_num(s.inventory)} resets {_num(s.resets)} req/s {rate}"
            if s.problem:
                part += f" ({s.problem})"
            parts.append(part)
        self.event("status: " + " | ".join(parts))


class LiveOutput(Output):
    """A rich Live panel refreshed every second; events scroll above it."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self._live: Any = None
        self._demo: LocalDemo | None = None
        self._events: list[str] = []

    def banner(self, lines: list[str]) -> None:
        for line in lines:
            self.console.print(line, highlight=False, soft_wrap=True)

    def event(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        self._events = [*self._events[-5:], line]
        self.console.print(line, highlight=False, soft_wrap=True)

    def start(self, demo: LocalDemo) -> None:
        from rich.live import Live

        self._demo = demo
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=2,
            transient=True,
        )
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def status(self, demo: LocalDemo) -> None:
        if self._live is not None:
            self._live.refresh()

    def _render(self) -> Any:
        from rich.panel import Panel
        from rich.table import Table

        demo = self._demo
        table = Table(expand=False, box=None, padding=(0, 1))
        columns = ("replica", "port", "inventory", "lowest", "resets", "req/s", "ok/failed", "")
        for column in columns:
            table.add_column(column, justify="left" if column in ("replica", "") else "right")
        if demo is None:
            return table
        now = time.time()
        for r in list(demo.replicas):
            s = r.state
            state = ""
            if s.problem:
                state = f"[yellow]{s.problem}[/]"
            elif s.inventory is not None and s.inventory < demo.config.threshold:
                state = "[bold red]oversold[/]"
            elif s.last_heal is not None and now - s.last_heal < 10:
                state = "[bold green]healed[/]"
            rate = "-" if s.request_rate is None else f"{s.request_rate:.1f}"
            table.add_row(
                r.name,
                str(r.port),
                _num(s.inventory),
                _num(s.lowest_seen),
                _num(s.resets),
                rate,
                f"{s.orders_success:g}/{s.orders_failed:g}",
                state,
            )
        lines = []
        if demo.prometheus_url:
            lines.append(f"Prometheus {demo.prometheus_url}")
        if demo.alertmanager_url:
            lines.append(f"Alertmanager {demo.alertmanager_url}")
        heal = f"heals {demo.heal_count}" if demo.config.heal else "heal off"
        load = f"load round {demo.load_round}" if demo.config.with_load else "no load"
        lines.append(f"{heal} · {load} · Ctrl-C stops everything")
        from rich.console import Group
        from rich.text import Text

        return Panel(
            Group(table, Text(""), Text("  ".join(lines), style="dim")),
            title="promdemo local",
            title_align="left",
        )
