"""The option rules every `promdemo` command shares: durations, ports, counts, exit codes."""

from __future__ import annotations

import argparse

import pytest

from promdemo_operator.cli import main as cli
from promdemo_operator.core import cliargs


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15", 15.0),
        ("15s", 15.0),
        ("0.5", 0.5),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_a_duration_is_seconds_or_prometheus_units(text: str, seconds: float) -> None:
    assert cliargs.duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1", "-1s", "1.5s", "30s1m", "nan", "inf", "", "5 m"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cliargs.duration(text)


@pytest.mark.parametrize("text", ["0", "0s", "0ms", "0.0001"])
def test_a_positive_duration_is_at_least_a_millisecond(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1ms"):
        cliargs.positive_duration(text)
    assert cliargs.positive_duration("1ms") == 0.001


def test_ports() -> None:
    assert cliargs.port("1") == 1
    assert cliargs.port("65535") == 65535
    assert cliargs.port_or_off("0") == 0
    for bad in ("0", "65536", "http", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            cliargs.port(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"0: off"):
        cliargs.port_or_off("70000")


def test_int_range_and_finite_float() -> None:
    parse = cliargs.int_range(1, 50)
    assert parse("50") == 50
    for bad in ("0", "51", "2.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    assert cliargs.positive_int("1000000") == 1_000_000
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
        cliargs.positive_int("0")
    assert cliargs.finite_float("-2.5") == -2.5
    for bad in ("nan", "inf", "-inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            cliargs.finite_float(bad)


def test_an_http_url_needs_a_scheme_and_a_host() -> None:
    assert cliargs.http_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"
    assert cliargs.http_url(" https://prom.example/prefix ") == "https://prom.example/prefix"
    for bad in ("127.0.0.1:9090", "ftp://host", "http://", "prometheus"):
        with pytest.raises(argparse.ArgumentTypeError, match="not an http"):
            cliargs.http_url(bad)


def test_exit_codes() -> None:
    assert (cliargs.EXIT_OK, cliargs.EXIT_FAILED, cliargs.EXIT_USAGE) == (0, 1, 2)
    assert cliargs.EXIT_INTERRUPTED == 130


# --------------------------------------------------------------------------- every command


def _duration_options() -> list[tuple[str, str, argparse.Action]]:
    """(command, option, action) of every duration option of every subcommand."""
    found = []
    for name in cli.COMMANDS:
        parser, runners = cli.build_parser(name)
        if isinstance(runners.get(name), BaseException):
            continue  # a subcommand that cannot load here is tested elsewhere
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for action in sub.choices[name]._actions:
            if action.type in (cliargs.duration, cliargs.positive_duration):
                found.append((name, action.option_strings[-1], action))
    return found


DURATION_OPTIONS = _duration_options()


def test_the_commands_read_durations_with_cliargs() -> None:
    # `load --pause 15s` was refused while `local --load-pause 15s` was accepted.
    names = {(command, option) for command, option, _ in DURATION_OPTIONS}
    assert {("load", "--pause"), ("load", "--timeout"), ("local", "--load-pause")} <= names
    assert {("local", "--interval"), ("local", "--duration"), ("local", "--scrape-interval")} <= (
        names
    )


@pytest.mark.parametrize(
    ("command", "option", "action"),
    DURATION_OPTIONS,
    ids=[f"{c} {o}" for c, o, _ in DURATION_OPTIONS],
)
def test_every_duration_option_means_the_same(
    command: str, option: str, action: argparse.Action
) -> None:
    assert callable(action.type)
    for text, seconds in (("15", 15.0), ("15s", 15.0), ("500ms", 0.5), ("1m30s", 90.0)):
        assert action.type(text) == seconds, (command, option, text)
    with pytest.raises(argparse.ArgumentTypeError):
        action.type("soon")
