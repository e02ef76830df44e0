"""The parts of `promdemo local` that need no process: readings, banner, round lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from promdemo_operator.cli.load import LoadError, summarize
from promdemo_operator.cli.local import loops
from promdemo_operator.cli.local.banner import READY_LINE, banner_lines
from promdemo_operator.cli.local.options import LocalConfig
from promdemo_operator.cli.local.procs import Child
from promdemo_operator.cli.local.session import DemoState, Replica, ReplicaState
from promdemo_operator.cli.local.ui import PlainOutput

METRICS = """\
# TYPE product_inventory gauge
product_inventory -12.0
# TYPE inventory_resets_total counter
inventory_resets_total 2.0
# TYPE orders_total counter
orders_total{result="success"} 130.0
orders_total{result="failed"} 20.0
# TYPE http_requests_total counter
http_requests_total{method="POST",status="200"} 130.0
http_requests_total{method="POST",status="409"} 20.0
http_requests_total{method="GET",status="200"} 5.0
"""


def _replica(name: str, port: int) -> Replica:
    return Replica(name, port, Child(name, ["true"], Path("/dev/null")))


def test_panel_values_sum_the_label_sets() -> None:
    assert loops.panel_values(METRICS) == {
        "product_inventory": -12.0,
        "inventory_resets_total": 2.0,
        "orders_success": 130.0,
        "orders_failed": 20.0,
        "http_requests_total": 155.0,
    }


def test_request_rate_and_lowest_inventory() -> None:
    state = ReplicaState()
    state.update({"http_requests_total": 100.0, "product_inventory": 100.0}, now=0.0)
    assert state.request_rate is None  # one reading: no rate yet
    state.update({"http_requests_total": 150.0, "product_inventory": -40.0}, now=5.0)
    assert state.request_rate == pytest.approx(10.0)
    state.update({"http_requests_total": 150.0, "product_inventory": 100.0}, now=10.0)
    assert state.request_rate == pytest.approx(5.0)
    assert state.lowest_seen == -40.0
    assert state.inventory == 100.0


def test_a_restarted_replica_starts_its_rate_again() -> None:
    state = ReplicaState()
    state.update({"http_requests_total": 500.0}, now=0.0)
    state.update({"http_requests_total": 600.0}, now=1.0)
    state.update({"http_requests_total": 3.0}, now=2.0)  # the counter went back: a restart
    state.update({"http_requests_total": 13.0}, now=3.0)
    assert state.request_rate == pytest.approx(10.0)


def test_the_rate_covers_about_the_last_ten_seconds() -> None:
    state = ReplicaState()
    for second in range(31):
        total = second * 1.0 if second <= 20 else 20.0 + (second - 20) * 5.0
        state.update({"http_requests_total": total}, now=float(second))
    # 1/s for 20 s, then 5/s: the rate shown is the recent one, not the average since start.
    assert state.request_rate == pytest.approx(5.0, rel=0.1)


def _state(**config: object) -> DemoState:
    state = DemoState(LocalConfig(**config))  # type: ignore[arg-type]
    state.replicas = [_replica("replica-1", 18080), _replica("replica-2", 18081)]
    return state


def test_banner_with_prometheus_lists_everything_and_ends_ready() -> None:
    state = _state(interval_seconds=1.0, cooldown_seconds=90.0, scrape_interval_seconds=0.5)
    state.prometheus_url = "http://127.0.0.1:19090"
    state.alertmanager_url = "http://127.0.0.1:19093"
    lines = banner_lines(state, token="tok", workdir=Path("/w"))
    text = "\n".join(lines)
    assert "http://127.0.0.1:18080" in text
    assert "http://127.0.0.1:18081" in text
    assert "scrapes every 500ms; rules /w/rules.yml" in text
    assert "every 1s: reset a replica whose inventory < 0 for 0s (cooldown 1m30s)" in text
    assert "http://127.0.0.1:19090/graph?g0.expr=" in text
    assert "Authorization: Bearer tok" in text
    assert "http://127.0.0.1:18080/inventory/reset" in text
    assert lines[-1] == READY_LINE


def test_banner_without_prometheus_or_heal() -> None:
    lines = banner_lines(_state(heal=False), token="tok", workdir=Path("/w"))
    text = "\n".join(lines)
    assert "Prometheus" not in text
    assert "/graph" not in text
    assert "off (--no-heal)" in text
    assert lines[-1] == READY_LINE


def test_plain_status_line(capsys: pytest.CaptureFixture[str]) -> None:
    state = _state()
    state.replicas[0].state.update(loops.panel_values(METRICS), now=0.0)
    state.replicas[1].state.problem = "unreachable (ConnectError)"
    PlainOutput().status(state)
    out = capsys.readouterr().out
    assert "replica-1 inventory -12 resets 2 req/s -" in out
    assert "replica-2 inventory - resets - req/s - (unreachable (ConnectError))" in out


def test_a_round_line_sums_the_replicas_and_counts_the_unreachable() -> None:
    from promdemo_operator.cli.load import OrderResult

    def summary(*codes: int, elapsed: float) -> object:
        results = [OrderResult(0.1, status=c) for c in codes]
        return summarize(results, url="u", concurrency=2, rounds=1, elapsed_seconds=elapsed)

    line = loops.round_line(
        3,
        [
            summary(200, 200, 409, elapsed=1.0),
            summary(200, 502, elapsed=2.5),
            LoadError("target unreachable"),
        ],  # type: ignore[list-item]
    )
    assert line.startswith("load round 3 done in 2.5s: HTTP 200: 3, 409: 1, 502: 1, 1 without")


def test_a_round_does_not_hide_a_bug() -> None:
    with pytest.raises(ZeroDivisionError):
        loops.round_line(1, [ZeroDivisionError()])
