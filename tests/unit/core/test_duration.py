"""core/duration.py: the one duration syntax of the spec, the rules and the CLI."""

from __future__ import annotations

import pytest

from promdemo_operator.core.duration import (
    MAX_LENGTH,
    MAX_SECONDS,
    MAX_TEXT,
    DurationError,
    format_seconds,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("2h15m", 8100.0),
        ("1h1m1s1ms", 3661.001),
        ("90s", 90.0),
        ("0ms", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "5 m",
        "5min",
        "1d",
        "-5s",
        "1.5s",
        "s",
        "5S",
        " 5s",
        "5s ",
        "30s1m",
        "1m1m",
        "5ms5s",
    ],
)
def test_parse_duration_rejects(text: str):
    with pytest.raises(DurationError) as caught:
        parse_duration(text, field="spec.autoHeal.interval")
    assert caught.value.field == "spec.autoHeal.interval"
    assert caught.value.message.startswith("spec.autoHeal.interval: ")
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("value", [5, 5.0, None, ["5s"]])
def test_parse_duration_rejects_non_strings(value):
    with pytest.raises(DurationError):
        parse_duration(value)


@pytest.mark.parametrize("text", ["0s", "500ms", "30s", "1m30s", "2h15m", "1h1m1s1ms"])
def test_format_seconds_round_trips(text: str):
    assert format_seconds(parse_duration(text)) == text


def test_a_spec_duration_error_is_a_spec_error_with_its_reason():
    from promdemo_operator.core.spec import SpecError, parse_spec

    with pytest.raises(SpecError) as caught:
        parse_spec({"autoHeal": {"interval": "30s1m"}})
    assert caught.value.reason == "InvalidDuration"
    assert caught.value.message.startswith("spec.autoHeal.interval: ")


def test_the_longest_duration_prometheus_holds_is_accepted():
    """Prometheus holds a duration as int64 nanoseconds: 2562047h47m16s854ms at most."""
    assert parse_duration(MAX_TEXT) == MAX_SECONDS
    assert format_seconds(MAX_SECONDS) == MAX_TEXT


@pytest.mark.parametrize("text", ["2562047h47m16s855ms", "2562048h", "9999999999h"])
def test_durations_prometheus_cannot_hold_are_refused(text: str):
    """promtool says `duration out of range` for these; so does the parser, naming the field."""
    with pytest.raises(DurationError) as caught:
        parse_duration(text, field="spec.autoHeal.for")
    assert caught.value.message == (
        f"spec.autoHeal.for: {text!r} is longer than Prometheus can hold (at most {MAX_TEXT})"
    )


def test_a_long_text_is_refused_before_its_digits_are_read():
    text = "1" * 5000 + "s"  # int() of it would raise ValueError (Python's 4300-digit cap)
    with pytest.raises(DurationError) as caught:
        parse_duration(text, field="x")
    assert caught.value.message == f"x: a duration is at most {MAX_LENGTH} characters, got 5001"
    assert parse_duration("0" * (MAX_LENGTH - 2) + "1s") == 1.0  # exactly MAX_LENGTH
