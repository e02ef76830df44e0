"""`promdemo local`'s view of its Prometheus: the links, the lesson numbers, the panel, the lines.

From real answers of a `promdemo local` run (tests/unit/data/local/README.md): both
replicas up after a round of load, then replica-2 stopped.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from promdemo_operator.cli.local import loops
from promdemo_operator.cli.local.health import BROKEN, NOTE, OK, SKIPPED, Place, read_health
from promdemo_operator.cli.local.options import LocalConfig
from promdemo_operator.cli.local.procs import Child
from promdemo_operator.cli.local.session import DemoState, Replica
from promdemo_operator.cli.local.ui import PlainOutput, render_panel
from promdemo_operator.prometheus.parse import Snapshot

DATA = Path(__file__).parents[1] / "data" / "local"
WORKDIR = Path("/w")
PROM = "http://127.0.0.1:28531"
REPLICAS = {"127.0.0.1:28431": "replica-1", "127.0.0.1:28432": "replica-2"}


def answers(when: str) -> dict[str, Any]:
    return {
        part: json.loads((DATA / f"{part}-{when}.json").read_text())
        for part in ("targets", "rules", "lessons")
    }


def snapshot(when: str = "up", **changed: Any) -> Snapshot:
    parts = answers(when)
    parts.update(changed)
    return Snapshot(parts["targets"], parts["rules"], parts["lessons"])


def place(**kw: Any) -> Place:
    return Place(PROM, WORKDIR, REPLICAS, **kw)


def demo_state(**config: Any) -> DemoState:
    state = DemoState(LocalConfig(port=28431, **config))
    state.replicas = [
        Replica(name, int(instance.rsplit(":", 1)[1]), Child(name, ["true"], Path("/dev/null")))
        for instance, name in REPLICAS.items()
    ]
    state.prometheus_url = PROM
    state.health_every = 1.0
    return state


def text_of(renderable: Any, width: int = 200) -> str:
    """What a terminal `width` columns wide shows, with runs of spaces as one."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return re.sub(" +", " ", console.export_text())


# --------------------------------------------------------------------------- the links


def test_both_replicas_up_rules_loaded_alerts_and_lesson_numbers() -> None:
    health = read_health(snapshot("up"), place())
    assert [(link.name, link.state) for link in health.links] == [
        ("targets", OK),
        ("rules", OK),
        ("alerts", NOTE),  # an alert fires: a fact to look at, never a broken link
    ]
    assert health.link("targets").detail == "2/2 up"
    assert health.link("rules").detail == (
        "promdemo.alerts and promdemo.recording loaded (12 rules, every 1s)"
    )
    assert health.link("alerts").detail == (
        "firing: InventoryNegative (replica-1, replica-2); pending: HighLatencyP95, LowSuccessRate"
    )
    assert health.broken is None
    # the recording rules' values: 1.906 s, 0.8594, 1.0735/s
    assert health.lessons_text == "p95 1.91s, success 85.9%, 1.07 req/s"
    assert health.evaluation_interval == 1.0


def test_a_replica_down_is_a_broken_target_with_its_last_error_and_its_fix() -> None:
    health = read_health(snapshot("down"), place())
    targets = health.link("targets")
    assert targets.state == BROKEN
    assert targets.detail == (
        '1/2 up; last error (replica-2): Get "http://127.0.0.1:28432/metrics": '
        "dial tcp 127.0.0.1:28432: connect: connection refused"
    )
    assert health.broken is targets
    assert targets.fix is not None
    assert targets.fix.startswith("the scrape of replica-2 (127.0.0.1:28432) fails: Get ")
    assert "`curl http://127.0.0.1:28432/metrics`, and its log /w/replica-2.log" in targets.fix
    assert health.link("alerts").detail == (
        "firing: InventoryNegative (replica-1); "
        "pending: OrderServiceDown (replica-2), HighLatencyP95, LowSuccessRate"
    )


def test_a_replica_that_exited_is_named_with_its_exit_code_and_log() -> None:
    health = read_health(snapshot("down"), place(exited={"replica-2": -9}))
    assert health.link("targets").fix == (
        "replica-2 (127.0.0.1:28432) exited (code -9): its last lines are in /w/replica-2.log"
    )


def test_no_target_is_broken_except_while_prometheus_starts() -> None:
    body = copy.deepcopy(answers("up")["targets"])
    body["data"]["activeTargets"] = []
    starting = read_health(snapshot(targets=body), place(starting=True)).link("targets")
    assert (starting.state, starting.detail) == (OK, "none yet: Prometheus is starting")
    later = read_health(snapshot(targets=body), place()).link("targets")
    assert later.state == BROKEN
    assert later.fix == (
        "Prometheus did not load the scrape job of /w/prometheus.yml: its log /w/prometheus.log"
    )


def test_a_target_not_scraped_yet_is_not_broken() -> None:
    body = copy.deepcopy(answers("up")["targets"])
    body["data"]["activeTargets"][1].update(health="unknown", lastScrape="0001-01-01T00:00:00Z")
    targets = read_health(snapshot(targets=body), place()).link("targets")
    assert (targets.state, targets.detail) == (OK, "1/2 up, 1 not scraped yet")


def test_rules_not_loaded_and_a_failing_rule() -> None:
    rules = copy.deepcopy(answers("up")["rules"])
    rules["data"]["groups"] = []
    health = read_health(snapshot(rules=rules), place())
    link = health.link("rules")
    assert link.state == BROKEN
    assert link.detail == "Prometheus has not loaded promdemo.recording and promdemo.alerts"
    assert link.fix == (
        "Prometheus did not load /w/rules.yml: `promtool check rules /w/rules.yml`,"
        " and its log /w/prometheus.log"
    )
    assert health.link("alerts").detail == "none pending or firing"

    rules = copy.deepcopy(answers("up")["rules"])
    rule = rules["data"]["groups"][1]["rules"][1]
    rule.update(health="err", lastError="query timed out")
    link = read_health(snapshot(rules=rules), place()).link("rules")
    assert link.state == BROKEN
    assert link.detail == f"evaluation fails: {rule['name']}: query timed out"
    assert link.fix is not None
    assert "a rule of /w/rules.yml fails to evaluate" in link.fix


def test_prometheus_not_answering_and_prometheus_exited() -> None:
    error = "/api/v1/targets: ConnectError: All connection attempts failed"
    gone = Snapshot(None, None, None, {"targets": error, "rules": error, "lessons": error})
    health = read_health(gone, place())
    assert not health.answered
    targets = health.link("targets")
    assert targets.detail == f"Prometheus {PROM}: {error}"
    assert targets.fix == f"check that Prometheus answers at {PROM}; its log: /w/prometheus.log"
    assert health.link("alerts").state == SKIPPED
    assert health.lessons_text == f"not read: {error}"
    exited = read_health(gone, place(exited={"prometheus": 1})).link("targets")
    assert exited.fix == "Prometheus exited (code 1): its last lines are in /w/prometheus.log"


def test_lesson_numbers_before_any_order() -> None:
    lessons = copy.deepcopy(answers("up")["lessons"])
    for sample in lessons["data"]["result"]:
        name = sample["metric"]["__name__"]
        sample["value"][1] = "0" if name == "job:http_requests:rate5m" else "NaN"  # 0/0
    assert read_health(snapshot(lessons=lessons), place()).lessons_text == (
        "no order in the last 5m (0 req/s)"
    )
    lessons["data"]["result"] = []
    assert read_health(snapshot(lessons=lessons), place()).lessons_text == (
        "no numbers yet: the recording rules have not run"
    )


def test_refresh_is_never_faster_than_the_evaluation_interval() -> None:
    assert loops.refresh_seconds(LocalConfig(scrape_interval_seconds=5.0)) == 5.0
    assert loops.refresh_seconds(LocalConfig(scrape_interval_seconds=5.0), 15.0) == 15.0
    # a very short interval: still at most one round a second
    assert loops.refresh_seconds(LocalConfig(scrape_interval_seconds=0.2), 0.2) == 1.0


# --------------------------------------------------------------------------- the panel


def test_the_panel_shows_the_links_the_lessons_and_the_fix() -> None:
    state = demo_state()
    state.health = read_health(snapshot("up"), place(), now=1000.0)
    text = text_of(render_panel(state, now=1003.0))
    assert f"Prometheus {PROM} · read every 1s, last 3s ago" in text
    assert "✓ targets 2/2 up" in text
    assert "✓ rules promdemo.alerts and promdemo.recording loaded (12 rules, every 1s)" in text
    assert "! alerts firing: InventoryNegative (replica-1, replica-2)" in text
    assert "lessons p95 1.91s, success 85.9%, 1.07 req/s (recording rules, 5m)" in text
    assert "fix" not in text

    state.health = read_health(snapshot("down"), place(exited={"replica-2": 0}), now=1000.0)
    text = text_of(render_panel(state, now=1000.0))
    assert "✗ targets 1/2 up; last error (replica-2): Get" in text
    assert (
        " fix (targets): replica-2 (127.0.0.1:28432) exited (code 0): its last lines are in"
        " /w/replica-2.log"
    ) in text


def test_the_panel_before_the_first_reading_and_without_prometheus() -> None:
    state = demo_state()
    assert f"Prometheus {PROM} · read every 1s · first reading…" in text_of(render_panel(state))
    state.prometheus_url = None
    state.prometheus_off = "--no-prometheus"
    text = text_of(render_panel(state))
    assert "Prometheus not running (--no-prometheus): no targets, rules or lesson numbers" in text
    assert "targets" not in text.replace("no targets", "")


# --------------------------------------------------------------------------- plain lines


def lines_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    # drop the HH:MM:SS stamp of each line
    return [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]


def test_plain_lines_print_the_fix_once_and_say_when_it_holds_again(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = demo_state()
    out = PlainOutput()
    clock = [100.0]
    monkeypatch.setattr("promdemo_operator.cli.local.ui.time.monotonic", lambda: clock[0])

    def reading(when: str) -> None:
        state.health = read_health(snapshot(when), place())
        out.prometheus(state)
        clock[0] += 1.0  # one reading a second, as with --scrape-interval 1s

    reading("up")
    assert lines_of(capsys) == [
        "prometheus: targets 2/2 up | rules promdemo.alerts and promdemo.recording loaded "
        "(12 rules, every 1s) | alerts firing: InventoryNegative (replica-1, replica-2); "
        "pending: HighLatencyP95, LowSuccessRate | lessons p95 1.91s, success 85.9%, 1.07 req/s"
    ]
    for _ in range(4):
        reading("up")
    assert lines_of(capsys) == []  # the next status line comes 5 s after the last

    reading("down")  # a change of the broken link is printed at once, with its fix
    lines = lines_of(capsys)
    assert len(lines) == 2
    assert lines[0].startswith(
        "prometheus: targets BROKEN 1/2 up; last error (replica-2): Get "
        '"http://127.0.0.1:28432/metrics": dial tcp 127.0.0.1:28432: connect: connection refused'
        " | rules promdemo.alerts and promdemo.recording loaded"
    )
    assert lines[1].startswith("prometheus: fix (targets): the scrape of replica-2")
    for _ in range(10):
        reading("down")
    lines = lines_of(capsys)
    assert len(lines) == 2  # two status lines in 10 s, and no fix again
    assert all(line.startswith("prometheus: targets BROKEN 1/2 up") for line in lines)

    reading("up")
    lines = lines_of(capsys)
    assert lines[-1] == "prometheus: every link holds again"


def test_plain_lines_do_not_repeat_an_unreachable_prometheus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = demo_state()
    out = PlainOutput()
    error = "/api/v1/targets: ConnectError: All connection attempts failed"
    gone = Snapshot(None, None, None, {"targets": error, "rules": error, "lessons": error})
    for _ in range(20):
        state.health = read_health(gone, place(exited={"prometheus": 2}))
        out.prometheus(state)
    lines = lines_of(capsys)
    assert len(lines) == 2
    assert lines[0].startswith(f"prometheus: targets BROKEN Prometheus {PROM}: {error}")
    assert lines[1] == (
        "prometheus: fix (targets): Prometheus exited (code 2): its last lines are in"
        " /w/prometheus.log"
    )


def test_without_prometheus_the_plain_output_says_so_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = demo_state()
    state.prometheus_url = None
    state.prometheus_off = "not installed"
    out = PlainOutput()
    out.start(state)
    for _ in range(10):
        out.status(state)
    lines = lines_of(capsys)
    said = [line for line in lines if "Prometheus" in line]
    assert said == ["Prometheus not running (not installed): no targets, rules or lesson numbers"]
