"""What `promdemo local` shows: a live rich panel on a terminal, plain lines otherwise.

Both outputs take the same calls: `banner` once at start, `event` for what
happened (a heal, a load round, an alert), `status` after every scrape of the
replicas, `prometheus` after every reading of Prometheus (`state.health`: its
targets, rules, alerts and the lesson numbers, with the fix for a broken link),
`warn`/`error` for one-line problems on stderr. They read the demo only through
`state.DemoState`, and never ask Prometheus themselves.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from promdemo_operator.cli.local.health import BROKEN, NOTE, OK, SKIPPED, LocalHealth
from promdemo_operator.cli.local.session import DemoState
from promdemo_operator.core.duration import format_seconds

PLAIN_STATUS_SECONDS = 5.0
#: A replica counts as "healed" in the panel this long after its reset.
HEALED_SHOWN_SECONDS = 10.0


def _num(value: float | None, fmt: str = "g") -> str:
    return "-" if value is None else format(value, fmt)


#: How a link's state reads: a mark in the panel (as `promdemo doctor` draws it), a word in
#: plain lines (none for a link that holds).
MARKS = {OK: ("✓", "green"), BROKEN: ("✗", "red"), SKIPPED: ("–", "dim"), NOTE: ("!", "yellow")}
WORDS = {OK: "", BROKEN: "BROKEN ", SKIPPED: "skipped: ", NOTE: ""}


def not_running_line(state: DemoState) -> str:
    """What to say, once, when Prometheus does not run."""
    return (
        f"Prometheus not running ({state.prometheus_off or 'not started'}):"
        " no targets, rules or lesson numbers"
    )


def prometheus_line(health: LocalHealth) -> str:
    """One plain line: every link (BROKEN where one is) and the lesson numbers."""
    parts = [f"{link.name} {WORDS[link.state]}{link.detail}" for link in health.links]
    parts.append(f"lessons {health.lessons_text}")
    return "prometheus: " + " | ".join(parts)


def fix_line(health: LocalHealth) -> str | None:
    """`fix (targets): ...` for the first broken link, None when every link holds."""
    broken = health.broken
    if broken is None or not broken.fix:
        return None
    return f"fix ({broken.name}): {broken.fix}"


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

    def prometheus(self, state: DemoState) -> None:
        """Called after every reading of Prometheus (`state.health`)."""

    def stop(self) -> None:
        """The demo is stopping."""


class PlainOutput(Output):
    """Events as they happen and status lines every 5 s (not a terminal, or --no-ui).

    Prometheus's line comes at the same pace while Prometheus answers; the fix of
    a broken link is printed once when it appears or changes, and one line says
    when every link holds again, so a Prometheus that is down is not an error a
    line.
    """

    def __init__(self) -> None:
        self._last_status = 0.0
        self._last_prometheus = 0.0
        self._fix: str | None = None

    def start(self, state: DemoState) -> None:
        if state.prometheus_url is None:
            self.event(not_running_line(state))

    def prometheus(self, state: DemoState) -> None:
        health = state.health
        if health is None:
            return
        now = time.monotonic()
        fix = fix_line(health)
        changed = fix != self._fix
        if changed or (health.answered and now - self._last_prometheus >= PLAIN_STATUS_SECONDS):
            self._last_prometheus = now
            self.event(prometheus_line(health))
        if changed:
            self.event(f"prometheus: {fix}" if fix else "prometheus: every link holds again")
            self._fix = fix

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

    def prometheus(self, state: DemoState) -> None:
        if self._live is not None:
            self._live.refresh()

    def _render(self) -> Any:
        if self._state is None:
            return Text("")
        return render_panel(self._state)


def _replicas_table(view: DemoState) -> Table:
    table = Table(expand=False, box=None, padding=(0, 1))
    columns = ("replica", "port", "inventory", "lowest", "resets", "req/s", "ok/failed", "")
    for column in columns:
        table.add_column(column, justify="left" if column in ("replica", "") else "right")
    now = time.time()
    for r in list(view.replicas):  # a copy: Live renders on its own thread
        s = r.state
        note = ""
        if s.problem:
            note = f"[yellow]{escape(s.problem)}[/]"
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
    return table


def _prometheus_part(view: DemoState, now: float) -> list[Any]:
    """Prometheus's links (doctor's marks), the lesson numbers and the first fix."""
    if view.prometheus_url is None:
        return [Text(not_running_line(view), style="dim")]
    health = view.health
    header = [f"Prometheus {view.prometheus_url}"]
    if view.health_every:
        header.append(f"read every {format_seconds(view.health_every)}")
    if health is None:
        return [Text(" · ".join([*header, "first reading…"]), style="dim")]
    header[-1] += f", last {max(0, round(now - health.read_at))}s ago"
    table = Table(expand=False, box=None, padding=(0, 1), show_header=False)
    table.add_column("state", no_wrap=True)
    table.add_column("link", no_wrap=True, style="bold")
    table.add_column("detail", overflow="fold")
    for link in health.links:
        mark, style = MARKS[link.state]
        table.add_row(
            Text(mark, style=style),
            link.name,
            Text(link.detail),
            style="dim" if link.state == SKIPPED else None,
        )
    table.add_row(Text(" "), "lessons", Text(health.lessons_text + "  (recording rules, 5m)"))
    parts: list[Any] = [Text(" · ".join(header), style="dim"), table]
    fix = fix_line(health)
    if fix is not None:
        parts.append(Text.assemble((" fix", "bold yellow"), fix.removeprefix("fix")))
    return parts


def render_panel(view: DemoState, *, now: float | None = None) -> Panel:
    """The live panel: the replicas, Prometheus's facts and the lesson numbers, the footer."""
    now = time.time() if now is None else now
    lines = []
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
        Group(
            _replicas_table(view),
            Text(""),
            *_prometheus_part(view, now),
            Text(""),
            Text("  ".join(lines), style="dim"),
        ),
        title="promdemo local",
        title_align="left",
    )
