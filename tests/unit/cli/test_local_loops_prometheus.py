"""What reading Prometheus costs `promdemo local`: one round of three requests per interval.

A small recording HTTP server stands in for Prometheus (answering with the real
bodies of tests/unit/data/local/) and counts every request `prometheus_loop` makes
while the panel and the plain lines are drawn from each reading.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from promdemo_operator.cli.local import loops
from promdemo_operator.cli.local.options import LocalConfig
from promdemo_operator.cli.local.procs import Child
from promdemo_operator.cli.local.session import DemoState, Replica
from promdemo_operator.cli.local.ui import Output, PlainOutput, render_panel
from promdemo_operator.prometheus.parse import LESSONS_QUERY

DATA = Path(__file__).parents[1] / "data" / "local"


def _body(part: str) -> dict[str, Any]:
    return json.loads((DATA / f"{part}-up.json").read_text())


class RecordingPrometheus:
    """Answers /api/v1/targets, /api/v1/rules and the lessons query; records each request."""

    def __init__(self, rules: dict[str, Any]) -> None:
        self.bodies = {
            "/api/v1/targets": _body("targets"),
            "/api/v1/rules": rules,
            "/api/v1/query": _body("lessons"),
        }
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests.append((time.monotonic(), request.path, dict(request.query)))
        body = self.bodies.get(request.path)
        if body is None:
            return web.json_response({"status": "error", "error": "not found"}, status=404)
        return web.json_response(body)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def times(self, path: str) -> list[float]:
        return [t for t, p, _ in self.requests if p == path]


class Drawing(Output):
    """Draws the panel and the plain lines at every reading, as both outputs would."""

    def __init__(self, state: DemoState, readings: int) -> None:
        self.state = state
        self.readings = 0
        self.wanted = readings
        self.done = asyncio.Event()
        self.plain = PlainOutput()

    def prometheus(self, state: DemoState) -> None:
        self.readings += 1
        for _ in range(5):  # the live panel redraws twice a second, whatever Prometheus does
            render_panel(state)
        self.plain.prometheus(state)
        if self.readings >= self.wanted:
            self.done.set()


def run_readings(rules: dict[str, Any], readings: int) -> tuple[RecordingPrometheus, float]:
    """Run `prometheus_loop` until `readings` readings; the server and the refresh used."""
    prometheus = RecordingPrometheus(rules)

    async def main() -> float:
        url = await prometheus.start()
        # a scrape (and evaluation) interval shorter than the floor of one read a second
        state = DemoState(LocalConfig(scrape_interval_seconds=0.2))
        state.replicas = [
            Replica(f"replica-{i}", 28430 + i, Child("r", ["true"], Path("/dev/null")))
            for i in (1, 2)
        ]
        state.prometheus_url = url
        out = Drawing(state, readings)
        task = asyncio.create_task(loops.prometheus_loop(state, out, workdir=Path("/w")))
        try:
            await asyncio.wait_for(out.done.wait(), timeout=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await prometheus.stop()
        assert state.health_every is not None
        return state.health_every

    return prometheus, asyncio.run(main())


def test_one_targets_one_rules_one_query_per_reading_and_nothing_else() -> None:
    prometheus, every = run_readings(_body("rules"), readings=3)
    paths = [p for _, p, _ in prometheus.requests]
    assert sorted(paths) == sorted(["/api/v1/targets", "/api/v1/rules", "/api/v1/query"] * 3)
    queries = [q for _, p, q in prometheus.requests if p == "/api/v1/query"]
    assert queries == [{"query": LESSONS_QUERY}] * 3
    assert [q for _, p, q in prometheus.requests if p == "/api/v1/targets"] == [
        {"state": "active"}
    ] * 3
    # the rules answer says every 1s; the configured 0.2s is below the floor of 1s
    assert every == 1.0
    for path in ("/api/v1/targets", "/api/v1/rules", "/api/v1/query"):
        times = prometheus.times(path)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= every * 0.99 for gap in gaps), (path, gaps)


def test_a_slower_evaluation_slows_the_reading_down() -> None:
    rules = copy.deepcopy(_body("rules"))
    for group in rules["data"]["groups"]:
        group["interval"] = 2
    prometheus, every = run_readings(rules, readings=2)
    assert every == 2.0
    assert len(prometheus.requests) == 6
    times = prometheus.times("/api/v1/targets")
    assert times[1] - times[0] >= 2.0 * 0.99


def test_the_first_round_of_load_waits_for_the_first_scrape_of_every_replica() -> None:
    """`first_scrape`: True once every replica is up in Prometheus, False at its timeout."""

    async def wait(targets: dict[str, Any], timeout: float) -> tuple[bool, int]:
        prometheus = RecordingPrometheus(_body("rules"))
        prometheus.bodies["/api/v1/targets"] = targets
        url = await prometheus.start()
        state = DemoState(LocalConfig())
        state.replicas = [
            Replica(f"replica-{i}", 28430 + i, Child("r", ["true"], Path("/dev/null")))
            for i in (1, 2)
        ]
        state.prometheus_url = url
        try:
            scraped = await loops.first_scrape(state, timeout=timeout, period=0.1)
        finally:
            await prometheus.stop()
        return scraped, len(prometheus.requests)

    assert asyncio.run(wait(_body("targets"), timeout=30)) == (True, 1)
    down = json.loads((DATA / "targets-down.json").read_text())  # replica-2 down
    scraped, requests = asyncio.run(wait(down, timeout=0.5))
    assert not scraped
    assert requests >= 2  # it asked again until the timeout
