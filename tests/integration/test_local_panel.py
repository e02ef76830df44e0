"""`promdemo local`'s status lines about its Prometheus, from a real run (plain output).

Targets up, rules loaded, the lesson numbers after a round of load (the same as
Prometheus's recording rules hold), a replica stopped → the broken link and its
fix; without Prometheus, one line saying so; and the same lines with `--lessons`.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.local_run import assert_all_gone
from tests.support.ports import consecutive_free_ports, free_port
from tests.support.processes import wait_until
from tests.support.tools import require_binary

pytestmark = pytest.mark.integration

LOADED = r"rules promdemo\.alerts and promdemo\.recording loaded \(12 rules, every 1s\)"
NUMBERS = r"lessons p95 ([0-9.]+)s, success ([0-9.]+)%, ([0-9.]+) req/s"


def recorded(prom: str, name: str) -> float:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": name}, timeout=10).json()
    return float(body["data"]["result"][0]["value"][1])


def test_targets_rules_lessons_then_a_replica_down_and_its_fix(local_run) -> None:
    require_binary("prometheus")
    port = consecutive_free_ports(2)
    prom_port, am_port = free_port(), free_port()
    run = local_run(
        "--replicas", "2", "--port", str(port),
        "--prometheus-port", str(prom_port), "--alertmanager-port", str(am_port),
        "--with-load", "--load-rounds", "1", "--load-orders", "300",
        "--scrape-interval", "1s", "--interval", "1s", "--duration", "180",
    )  # fmt: skip
    run.wait_for(r"promdemo local is ready", timeout=90)
    run.record_children()
    prom = f"http://127.0.0.1:{prom_port}"

    # After the round, the status line has every link holding and the lesson numbers.
    done = run.wait_for(r"load round 1 done in [0-9.]+s: HTTP 200: \d+", timeout=120)
    status = rf"prometheus: targets 2/2 up \| {LOADED} \| alerts .* \| {NUMBERS}"
    line = run.wait_for(status, 90, start=done.end())
    p95, success, rate = (float(x) for x in line.groups())
    assert 1.0 < p95 <= 2.0  # a burst's p95 falls in the bucket (1, 2] (docs/lessons.md, 3)
    assert 50.0 < success <= 100.0
    assert rate > 0
    # They are what Prometheus's recording rules hold. The first line after the round may
    # come from a snapshot taken before the last scrape of the burst, so the panel gets a
    # few refreshes to show the ratio the rule settles on once the load has stopped.
    agreed: list[tuple[float, float]] = []

    def panel_shows_the_recorded_ratio() -> bool:
        last = list(re.compile(status).finditer(run.stdout, done.end()))[-1]
        ratio = recorded(prom, "job:orders_success_per_orders:ratio_rate5m")
        agreed.append((float(last.group(2)), ratio * 100))
        return abs(agreed[-1][0] - agreed[-1][1]) <= 0.051

    try:
        wait_until(panel_shows_the_recorded_ratio, timeout=30, interval=1.0, what="agreement")
    except TimeoutError as e:
        raise AssertionError(f"panel vs recorded success %: {agreed[-5:]}") from e
    assert "prometheus: fix" not in run.stdout

    # replica-2 dies: the targets link breaks with its last scrape error, and the fix says so.
    (pid,) = [p for p in run.children if f"--port {port + 1}" in _cmdline(p)]
    mark = len(run.stdout)
    os.kill(pid, signal.SIGKILL)
    run.wait_for(
        r"prometheus: targets BROKEN 1/2 up; last error \(replica-2\): Get "
        rf'"http://127\.0\.0\.1:{port + 1}/metrics": [^|]*connection refused \| {LOADED}',
        60,
        start=mark,
    )
    fix = run.wait_for(r"prometheus: fix \(targets\): (.*)", 30, start=mark)
    assert fix.group(1) == (
        f"replica-2 (127.0.0.1:{port + 1}) exited (code -9): its last lines are in "
        f"{_workdir(run.stdout)}/replica-2.log"
    )

    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(90) == 0, run.stderr
    assert_all_gone(run, [port, prom_port, am_port])


def test_without_prometheus_it_says_so_once(local_run) -> None:
    port = consecutive_free_ports(1)
    run = local_run("--replicas", "1", "--port", str(port), "--no-prometheus", "--duration", "7")
    run.wait_for(r"promdemo local is ready", timeout=60)
    run.record_children()
    assert run.wait_exit(60) == 0, run.stderr
    said = [line for line in run.stdout.splitlines() if "Prometheus" in line]
    assert len(said) == 1, run.stdout
    assert said[0].endswith(
        "Prometheus not running (--no-prometheus): no targets, rules or lesson numbers"
    )
    assert "prometheus:" not in run.stdout
    assert run.stderr == ""
    assert_all_gone(run, [port])


def test_lessons_mode_shows_the_same_facts(local_run) -> None:
    require_binary("prometheus")
    port = consecutive_free_ports(1)
    prom_port, am_port = free_port(), free_port()
    run = local_run(
        "--lessons", "--port", str(port),
        "--prometheus-port", str(prom_port), "--alertmanager-port", str(am_port),
        "--duration", "120",
    )  # fmt: skip
    run.wait_for(r"promdemo local is ready", timeout=90)
    run.record_children()
    # before the burst: the replica scraped, the rules loaded, no order yet in the window
    run.wait_for(
        rf"prometheus: targets 1/1 up \| {LOADED} \| alerts [^|]* \| lessons no order in the "
        r"last 5m",
        timeout=60,
    )
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(90) == 0, run.stderr
    assert_all_gone(run, [port, prom_port, am_port])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _workdir(stdout: str) -> str:
    """The work directory, from the banner's `rules WORKDIR/rules.yml`."""
    match = re.search(r"rules (\S+)/rules\.yml\)", stdout)
    assert match is not None, stdout
    return match.group(1)
