"""`promdemo local --lessons` without processes: its banner, its commands, its clock.

The whole run (replica, Prometheus, the burst, `heal` typed in) is
tests/integration/test_lessons.py; here are the parts a learner reads and types.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from promdemo_operator.cli.lessons import LESSONS
from promdemo_operator.cli.local.banner import READY_LINE, banner_lines
from promdemo_operator.cli.local.lessons_mode import clock, command_loop
from promdemo_operator.cli.local.options import LocalConfig
from promdemo_operator.cli.local.procs import Child
from promdemo_operator.cli.local.session import DemoState, Replica
from promdemo_operator.cli.local.ui import Output


class Recorder(Output):
    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, message: str) -> None:
        self.events.append(message)


def _state(**config: object) -> DemoState:
    state = DemoState(LocalConfig(lessons=True, replicas=1, **config))  # type: ignore[arg-type]
    state.replicas = [Replica("replica-1", 18080, Child("replica-1", ["true"], Path("/dev/null")))]
    state.prometheus_url = "http://127.0.0.1:19090"
    return state


def test_the_banner_links_every_query_of_the_page_in_the_table_tab() -> None:
    lines = banner_lines(_state(), token="tok", workdir=Path("/w"))
    text = "\n".join(lines)
    assert lines[0].startswith("promdemo local --lessons: the setup of docs/lessons.md")
    assert "paused: type heal and press Enter" in text
    links = [line for line in lines if "/graph?g0.expr=" in line]
    assert len(links) == len(LESSONS)
    assert all("g0.tab=1" in line for line in links)
    assert "A second one (lesson 3):  promdemo load http://127.0.0.1:18080" in text
    assert lines[-1] == READY_LINE


def test_the_banner_of_prometheus_3_links_its_query_page() -> None:
    state = _state()
    state.prometheus_major = 3
    text = "\n".join(banner_lines(state, token="tok", workdir=Path("/w")))
    assert "/query?g0.expr=" in text
    assert "/graph?" not in text


def _commands(text: str, *, heal: bool = True) -> tuple[asyncio.Event, list[str]]:
    out = Recorder()
    enabled = asyncio.Event()

    async def run() -> None:
        await asyncio.wait_for(
            command_loop(_state(heal=heal), out, heal_enabled=enabled, stream=io.StringIO(text)),
            timeout=5,
        )

    asyncio.run(run())
    return enabled, out.events


def test_typing_heal_turns_healing_on() -> None:
    enabled, events = _commands("\n  HEAL \n")
    assert enabled.is_set()
    assert events == []  # the heal loop itself says "heal: on"


def test_other_input_says_what_can_be_typed() -> None:
    enabled, events = _commands("help\n")
    assert not enabled.is_set()
    assert events == ["commands: heal (turn healing on); Ctrl-C stops everything"]


def test_heal_twice_or_with_no_heal() -> None:
    enabled, events = _commands("heal\nheal\n")
    assert enabled.is_set()
    assert events == ["heal: already on"]
    enabled, events = _commands("heal\n", heal=False)
    assert not enabled.is_set()
    assert events == ["heal: off for this run (--no-heal)"]


def test_the_end_of_input_ends_the_commands_not_the_demo() -> None:
    enabled, events = _commands("")
    assert not enabled.is_set()
    assert events == []


def test_the_clock_gives_the_utc_the_prometheus_ui_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert clock(0) == "08:00:00 (00:00:00 UTC)"
    finally:
        monkeypatch.undo()
        time.tzset()
