"""`promdemo local`'s options, port plan, load split and links (no process started)."""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from promdemo_operator.cli.commands import local as command
from promdemo_operator.cli.lessons import LESSONS, SETUP, prometheus_major
from promdemo_operator.cli.local import links, loops, options
from promdemo_operator.cli.local.options import LocalConfig, UsageError
from tests.support.lessons_doc import doc_blocks


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


def test_plain_links_open_one_query_per_lesson_in_the_graph_tab() -> None:
    found = links.lesson_links("http://127.0.0.1:9090")
    assert [title.split(".")[0] for title, _, _ in found] == [str(n) for n in range(1, 14)]
    for _, expr, link in found:
        parts = urlsplit(link)
        assert parts.path == "/graph"
        query = parse_qs(parts.query)
        assert query["g0.expr"] == [expr]
        assert query["g0.tab"] == ["0"]  # the Graph tab: watch the load come and go
    exprs = [expr for _, expr, _ in found]
    assert "max_over_time(http_requests_in_progress[1m])" in exprs


def test_lessons_links_open_every_query_of_the_page_in_the_table_tab() -> None:
    found = links.lesson_links("http://127.0.0.1:9090", every_query=True)
    assert [expr for _, expr, _ in found] == [q.expr for q in LESSONS]
    for _, expr, link in found:
        query = parse_qs(urlsplit(link).query)
        assert query["g0.expr"] == [expr]
        assert query["g0.tab"] == ["1"]  # the table: the number the page tells to expect


def test_prometheus_3_links_open_its_query_page() -> None:
    """Prometheus 3 serves /query (its /graph redirects there) and names the tabs."""
    for every, tab in ((True, "table"), (False, "graph")):
        for _, expr, link in links.lesson_links("http://p:9090", major=3, every_query=every):
            parts = urlsplit(link)
            assert parts.path == "/query"
            assert parse_qs(parts.query)["g0.tab"] == [tab]
            assert parse_qs(parts.query)["g0.expr"] == [expr]


@pytest.mark.parametrize(
    ("version", "major"),
    [("2.42.0+ds-5+deb12u1", 2), ("3.1.0", 3), ("v3.0.0-rc.1", 3), ("", 2), ("dev", 2)],
)
def test_prometheus_major_version(version: str, major: int) -> None:
    assert prometheus_major(version) == major


def test_every_numbered_link_is_the_query_of_that_lesson() -> None:
    # The links are numbered as docs/lessons.md's sections: each must be a query
    # that the tutorial shows (and test_lessons.py runs), so the two cannot drift.
    lessons = Path(__file__).resolve().parents[2] / "docs" / "lessons.md"
    blocks = doc_blocks(lessons)
    text = lessons.read_text(encoding="utf-8")
    for title, expr, _ in links.lesson_links("http://p", every_query=True):
        number = int(title.split(".")[0])
        assert " ".join(expr.split()) in blocks, title
        section = text.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]
        assert expr in section, f"{expr} is not in lesson {number}'s section"


# --------------------------------------------------------------------------- --lessons


def test_lessons_defaults_are_the_pages_setup() -> None:
    cfg = _config("--lessons")
    assert cfg.lessons
    assert cfg.replicas == SETUP.replicas == 1
    assert cfg.scrape_interval_seconds == SETUP.scrape_seconds == 1.0
    assert (cfg.heal, cfg.with_load, cfg.prometheus) == (True, False, True)
    cfg.validate()
    # a scrape interval of one's own is allowed: the page states the bound in its terms
    assert _config("--lessons", "--scrape-interval", "5s").scrape_interval_seconds == 5.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lessons", "--replicas", "2"], "one replica"),
        (["--lessons", "--with-load"], "its own single burst"),
        (["--lessons", "--no-prometheus"], "needs Prometheus"),
    ],
)
def test_lessons_refuses_what_would_change_the_pages_numbers(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(*argv).validate()


def test_lessons_without_prometheus_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command.Tools, "find", classmethod(lambda cls, *_: cls(None, None)))
    assert command.run(_parse("--lessons")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--lessons needs Prometheus" in err[0]
    assert "apt-get install prometheus" in err[0]
