"""What `promdemo local` shows: a live rich panel on a terminal, plain lines otherwise.

Both outputs take the same calls: `banner` once at start, `event` for what
happened (a heal, a load round, an alert), `status` after every scrape of the
replicas, `warn`/`error` for one-line problems on stderr. They read the demo
only through `state.DemoState`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .state import DemoState

PLAIN_STATUS_SECONDS = 5.0
#: A replica counts as "healed" in the panel this long after its reset.
HEALED_SHOWN_SECONDS = 10.0


def _num(value: float | None, fmt: str = "g") -> str:
    return "-" if value is None else format(value, fmt)


class Output:
    """The calls the demo makes; this base prints plain lines (events on stdout)."""

    def banner(self, lines: list[str]) -> None:
        for line in lines:
            print(line, flush=True)

    def event(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def warn(self, message: str) -> None:
        print(f"promdemo local: {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"promdemo local: {message}", file=sys.stderr, flush=True)

    def start(self, state: DemoState) -> None:
        """The demo is running (after the banner)."""

    def status(self, state: DemoState) -> None:
        """Called after every scrape of the replicas."""

    def stop(self) -> None:
        """The demo is stopping."""


class PlainOutput(Output):
    """Events as they happen and a status line every 5 s (not a terminal, or --no-ui)."""

    def __init__(self) -> None:
        self._last_status = 0.0

    def status(self, state: DemoState) -> None:
        now = time.monotonic()
        if now - self._last_status < PLAIN_STATUS_SECONDS:
            return
        self._last_status = now
        parts = []
        for r in state.replicas:
            s = r.state
            rate = "-" if s.request_rate is None else f"{s.request_rate:.1f}"
            part = f"{r.name} inventory {_num(s.inventory)} resets {_num(s.resets)} req/s {rate}"
            if s.problem:
                part += f" ({s.problem})"
            parts.append(part)
        self.event("status: " + " | ".join(parts))


class LiveOutput(Output):
    """A rich Live panel of the replicas, refreshed twice a second; events scroll above it."""

    def __init__(self) -> None:
        self.console = Console()
        self._live: Live | None = None
        self._state: DemoState | None = None

    def banner(self, lines: list[str]) -> None:
        for line in lines:
            self.console.print(line, highlight=False, soft_wrap=True)

    def event(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        self.console.print(line, highlight=False, soft_wrap=True)

    def start(self, state: DemoState) -> None:
        self._state = state
        # transient: the panel disappears at exit, leaving the events above it readable.
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

    def status(self, state: DemoState) -> None:
        if self._live is not None:
            self._live.refresh()

    def _render(self) -> Any:
        view = self._state
        table = Table(expand=False, box=None, padding=(0, 1))
        columns = ("replica", "port", "inventory", "lowest", "resets", "req/s", "ok/failed", "")
        for column in columns:
            table.add_column(column, justify="left" if column in ("replica", "") else "right")
        if view is None:
            return table
        now = time.time()
        for r in list(view.replicas):  # a copy: Live renders on its own thread
            s = r.state
            note = ""
            if s.problem:
                note = f"[yellow]{s.problem}[/]"
            elif s.inventory is not None and s.inventory < view.config.threshold:
                note = "[bold red]oversold[/]"
            elif s.last_heal is not None and now - s.last_heal < HEALED_SHOWN_SECONDS:
                note = "[bold green]healed[/]"
            rate = "-" if s.request_rate is None else f"{s.request_rate:.1f}"
            table.add_row(
                r.name,
                str(r.port),
                _num(s.inventory),
                _num(s.lowest_seen),
                _num(s.resets),
                rate,
                f"{s.orders_success:g}/{s.orders_failed:g}",
                note,
            )
        lines = []
        if view.prometheus_url:
            lines.append(f"Prometheus {view.prometheus_url}")
        if view.alertmanager_url:
            lines.append(f"Alertmanager {view.alertmanager_url}")
        heal = f"heals {view.heal_count}" if view.config.heal else "heal off"
        if view.heal_paused:
            heal = "heal paused (type heal + Enter)"
        load = f"load round {view.load_round}" if view.config.with_load else "no load"
        if view.config.lessons:
            load = "burst sent" if view.load_round else "burst to come"
        lines.append(f"{heal} · {load} · Ctrl-C stops everything")
        return Panel(
            Group(table, Text(""), Text("  ".join(lines), style="dim")),
            title="promdemo local",
            title_align="left",
        )
