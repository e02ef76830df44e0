"""`promdemo local`'s options, port plan, load split and links (no process started)."""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from promdemo_operator.commands import local as command
from promdemo_operator.local import links, loops, options
from promdemo_operator.local.options import LocalConfig, UsageError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def _config(*argv: str) -> LocalConfig:
    return command.config_from_args(_parse(*argv))


def test_defaults() -> None:
    cfg = _config()
    assert (cfg.replicas, cfg.port, cfg.prometheus_port, cfg.alertmanager_port) == (
        2,
        8080,
        9090,
        9093,
    )
    assert cfg.app_ports == [8080, 8081]
    assert cfg.interval_seconds == 5.0
    assert cfg.load_orders == 300
    assert cfg.load_pause_seconds == 15.0
    assert cfg.duration_seconds is None
    assert cfg.scrape_interval_seconds == 5.0
    assert (cfg.ui, cfg.heal, cfg.prometheus, cfg.with_load) == (True, True, True, False)
    assert cfg == LocalConfig()  # the command's defaults are the config's


def test_durations_take_units_or_seconds() -> None:
    cfg = _config("--interval", "1s", "--for", "1m30s", "--cooldown", "500ms", "--duration", "90")
    assert (cfg.interval_seconds, cfg.for_seconds, cfg.cooldown_seconds, cfg.duration_seconds) == (
        1.0,
        90.0,
        0.5,
        90.0,
    )
    cfg = _config("--load-pause", "15", "--scrape-interval", "2")
    assert (cfg.load_pause_seconds, cfg.scrape_interval_seconds) == (15.0, 2.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--replicas", "0"],
        ["--replicas", "51"],
        ["--port", "70000"],
        ["--interval", "0s"],
        ["--interval", "soon"],
        ["--duration", "-1"],
        ["--scrape-interval", "0"],
        ["--load-pause", "later"],
        ["--threshold", "nan"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(*argv)
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "65535", "--replicas", "2"], "exceeds 65535"),
        (["--port", "9089", "--replicas", "2"], "collides"),
        (["--prometheus-port", "9999", "--alertmanager-port", "9999"], "must differ"),
    ],
)
def test_port_plans_are_validated(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(*argv).validate()


def test_a_collision_with_prometheus_does_not_matter_without_it() -> None:
    _config("--port", "9089", "--no-prometheus").validate()


def test_the_port_plan_names_each_process_and_its_option() -> None:
    cfg = _config("--replicas", "2", "--port", "18000")
    plan = options.planned_ports(cfg, prometheus=True, alertmanager=True)
    assert plan == [
        (18000, "replica-1", "--port"),
        (18001, "replica-2", "--port"),
        (9090, "Prometheus", "--prometheus-port"),
        (9093, "Alertmanager", "--alertmanager-port"),
    ]
    # Without Prometheus, Alertmanager is not started either.
    assert [p for p, _, _ in options.planned_ports(cfg, prometheus=False, alertmanager=True)] == [
        18000,
        18001,
    ]


@pytest.mark.parametrize(
    ("total", "parts", "expected"),
    [(300, 2, [150, 150]), (301, 2, [151, 150]), (2, 3, [1, 1, 0]), (7, 1, [7])],
)
def test_split_evenly(total: int, parts: int, expected: list[int]) -> None:
    assert loops.split_evenly(total, parts) == expected
    assert sum(loops.split_evenly(total, parts)) == total


def test_lesson_links_open_the_query_in_the_table_tab() -> None:
    found = links.lesson_links("http://127.0.0.1:9090")
    assert len(found) == len(links.LESSONS)
    for _, expr, link in found:
        parts = urlsplit(link)
        assert parts.path == "/graph"
        query = parse_qs(parts.query)
        assert query["g0.expr"] == [expr]
        assert query["g0.tab"] == ["0"]
    exprs = [expr for _, expr, _ in found]
    assert (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_latency_seconds_bucket[5m])))"
        in exprs
    )
    assert "max_over_time(http_requests_in_progress[1m])" in exprs


def test_every_numbered_link_is_the_query_of_that_lesson() -> None:
    # The links are numbered as docs/lessons.md's sections: each must be a query
    # that the tutorial shows (and test_lessons.py runs), so the two cannot drift.
    from tests.integration.test_lessons import doc_blocks

    lessons = Path(__file__).resolve().parents[2] / "docs" / "lessons.md"
    blocks = doc_blocks(lessons)
    numbered = [(title, expr) for title, expr in links.LESSONS if title[0].isdigit()]
    assert [int(title.split(".")[0]) for title, _ in numbered] == list(range(1, 11))
    for title, expr in numbered:
        assert " ".join(expr.split()) in blocks, title
