"""Settings from PROMDEMO_* variables: defaults, parsing, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from promdemo_app.settings import Settings, SettingsError, load_settings


def test_defaults_match_the_architecture_table() -> None:
    s = load_settings({})
    assert s == Settings()
    assert (s.host, s.port) == ("0.0.0.0", 8080)
    assert s.initial_inventory == 100
    assert s.oversell is True
    assert s.simulation is True
    assert (s.dependency_min_seconds, s.dependency_max_seconds) == (0.05, 1.5)
    assert s.dependency_failure_rate == 0.1
    assert (s.processing_min_seconds, s.processing_max_seconds) == (0.1, 0.5)
    assert s.reset_token is None
    assert s.reset_open is False
    assert s.metrics is True
    assert s.threads == 300
    assert s.shutdown_timeout_seconds == 25
    assert s.max_body_bytes == 65536
    assert s.log_level == "info"


def test_every_variable_is_read() -> None:
    s = load_settings(
        {
            "PROMDEMO_HOST": "127.0.0.1",
            "PROMDEMO_PORT": "9000",
            "PROMDEMO_INITIAL_INVENTORY": "5",
            "PROMDEMO_OVERSELL": "false",
            "PROMDEMO_SIMULATION": "off",
            "PROMDEMO_DEPENDENCY_MIN_SECONDS": "0.2",
            "PROMDEMO_DEPENDENCY_MAX_SECONDS": "0.3",
            "PROMDEMO_DEPENDENCY_FAILURE_RATE": "0.5",
            "PROMDEMO_PROCESSING_MIN_SECONDS": "0",
            "PROMDEMO_PROCESSING_MAX_SECONDS": "1",
            "PROMDEMO_RESET_TOKEN": "s3cret",
            "PROMDEMO_METRICS": "off",
            "PROMDEMO_THREADS": "8",
            "PROMDEMO_SHUTDOWN_TIMEOUT": "3.5",
            "PROMDEMO_MAX_BODY_BYTES": "1024",
            "PROMDEMO_LOG_LEVEL": "DEBUG",
            "UNRELATED": "ignored",
        }
    )
    assert s == Settings(
        host="127.0.0.1",
        port=9000,
        initial_inventory=5,
        oversell=False,
        simulation=False,
        dependency_min_seconds=0.2,
        dependency_max_seconds=0.3,
        dependency_failure_rate=0.5,
        processing_min_seconds=0.0,
        processing_max_seconds=1.0,
        reset_token="s3cret",
        metrics=False,
        threads=8,
        shutdown_timeout_seconds=3.5,
        max_body_bytes=1024,
        log_level="debug",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False)],
)
def test_oversell_words(value: str, expected: bool) -> None:
    assert load_settings({"PROMDEMO_OVERSELL": value}).oversell is expected


def test_empty_variables_mean_the_default() -> None:
    assert load_settings({"PROMDEMO_PORT": "", "PROMDEMO_RESET_TOKEN": " "}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("PROMDEMO_INITIAL_INVENTORY", "lots", "an integer from 0 to 1000000"),
        ("PROMDEMO_INITIAL_INVENTORY", "-1", "an integer from 0 to 1000000"),
        ("PROMDEMO_INITIAL_INVENTORY", "1000001", "an integer from 0 to 1000000"),
        ("PROMDEMO_INITIAL_INVENTORY", "1_000", "an integer from 0 to 1000000"),
        ("PROMDEMO_INITIAL_INVENTORY", "10.5", "an integer from 0 to 1000000"),
        ("PROMDEMO_PORT", "65536", "a port from 1 to 65535"),
        ("PROMDEMO_PORT", "http", "a port from 1 to 65535"),
        ("PROMDEMO_HOST", "my host", "an address to listen on"),
        ("PROMDEMO_OVERSELL", "maybe", "true or false"),
        ("PROMDEMO_SIMULATION", "sometimes", "on or off"),
        ("PROMDEMO_METRICS", "2", "on or off"),
        ("PROMDEMO_RESET_OPEN", "anyone", "true or false"),
        ("PROMDEMO_DEPENDENCY_MIN_SECONDS", "-0.1", "a number of seconds from 0 to 60"),
        ("PROMDEMO_DEPENDENCY_MAX_SECONDS", "61", "a number of seconds from 0 to 60"),
        ("PROMDEMO_PROCESSING_MIN_SECONDS", "nan", "a number of seconds from 0 to 60"),
        ("PROMDEMO_PROCESSING_MAX_SECONDS", "inf", "a number of seconds from 0 to 60"),
        ("PROMDEMO_DEPENDENCY_FAILURE_RATE", "1.5", "a fraction from 0 to 1"),
        ("PROMDEMO_DEPENDENCY_FAILURE_RATE", "10%", "a fraction from 0 to 1"),
        ("PROMDEMO_THREADS", "0", "an integer from 1 to 2000"),
        ("PROMDEMO_THREADS", "2001", "an integer from 1 to 2000"),
        ("PROMDEMO_SHUTDOWN_TIMEOUT", "soon", "a number of seconds from 0 to 3600"),
        ("PROMDEMO_MAX_BODY_BYTES", "0", "an integer from 1 to 16777216"),
        ("PROMDEMO_LOG_LEVEL", "verbose", "one of debug, info, warning, error"),
    ],
)
def test_bad_value_names_the_variable_and_what_it_accepts(
    name: str, value: str, accepts: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    message = str(raised.value)
    assert message.startswith(f"{name}={value!r} is not valid")
    assert accepts in message
    assert "\n" not in message


def test_max_below_min_blames_the_variable_that_was_set() -> None:
    with pytest.raises(SettingsError, match=r"^PROMDEMO_DEPENDENCY_MIN_SECONDS=2 .*at most"):
        load_settings({"PROMDEMO_DEPENDENCY_MIN_SECONDS": "2"})
    with pytest.raises(SettingsError, match=r"^PROMDEMO_PROCESSING_MAX_SECONDS=0.1 .*at least"):
        load_settings(
            {"PROMDEMO_PROCESSING_MIN_SECONDS": "0.3", "PROMDEMO_PROCESSING_MAX_SECONDS": "0.1"}
        )


def test_cli_flags_win_over_the_environment() -> None:
    s = load_settings({"PROMDEMO_HOST": "10.0.0.1", "PROMDEMO_PORT": "1"}, host="::1", port="0")
    assert (s.host, s.port) == ("::1", 0)


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingsError, match=r"^--port='x' is not valid"):
        load_settings({}, port="x")


def test_token_file_is_read_and_its_newline_dropped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-secret\n")
    s = load_settings({"PROMDEMO_RESET_TOKEN_FILE": str(path)})
    assert s.reset_token == "from-a-secret"


def test_token_never_shows_in_repr() -> None:
    s = load_settings({"PROMDEMO_RESET_TOKEN": "hunter2"})
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "cannot be read"), ("\n", "is empty"), ("x" * 5000, "is larger than 4096 bytes")],
    ids=["missing", "empty", "too-large"],
)
def test_bad_token_file(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=rf"^PROMDEMO_RESET_TOKEN_FILE='.*' {match}"):
        load_settings({"PROMDEMO_RESET_TOKEN_FILE": str(path)})


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("a")
    with pytest.raises(SettingsError, match="both set"):
        load_settings({"PROMDEMO_RESET_TOKEN": "b", "PROMDEMO_RESET_TOKEN_FILE": str(path)})


def test_reset_open_is_read() -> None:
    assert load_settings({"PROMDEMO_RESET_OPEN": "true"}).reset_open is True
    assert load_settings({"PROMDEMO_RESET_OPEN": "false"}).reset_open is False


def test_reset_open_with_a_token_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^PROMDEMO_RESET_OPEN=true and a reset token"):
        load_settings({"PROMDEMO_RESET_OPEN": "yes", "PROMDEMO_RESET_TOKEN": "s3cret"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # float() takes each of these; the docs promise plain decimal numbers.
        ("PROMDEMO_DEPENDENCY_MIN_SECONDS", "٠.٥"),  # Arabic-Indic digits
        ("PROMDEMO_DEPENDENCY_MAX_SECONDS", "１"),  # a fullwidth digit
        ("PROMDEMO_PROCESSING_MAX_SECONDS", "1_0"),
        ("PROMDEMO_PROCESSING_MIN_SECONDS", "1e-1"),
        ("PROMDEMO_SHUTDOWN_TIMEOUT", "+5"),
        ("PROMDEMO_SHUTDOWN_TIMEOUT", "infinity"),
        ("PROMDEMO_DEPENDENCY_FAILURE_RATE", "0x1"),
        ("PROMDEMO_THREADS", "٥"),
        ("PROMDEMO_PORT", "８０８０"),
        ("PROMDEMO_PROBE_PORT", "৮০৮১"),  # Bengali digits
    ],
)
def test_numbers_are_plain_ascii_digits_only(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert str(raised.value).startswith(f"{name}={value!r} is not valid")


@pytest.mark.parametrize(("value", "expected"), [("2", 2.0), ("0.25", 0.25), (".5", 0.5)])
def test_plain_decimal_seconds_are_read(value: str, expected: float) -> None:
    assert load_settings({"PROMDEMO_SHUTDOWN_TIMEOUT": value}).shutdown_timeout_seconds == expected


def test_the_probe_port_is_off_unless_set_and_differs_from_the_port() -> None:
    assert load_settings({}).probe_port is None
    assert load_settings({"PROMDEMO_PROBE_PORT": "8081"}).probe_port == 8081
    assert load_settings({}, probe_port="0").probe_port == 0  # any free port
    with pytest.raises(SettingsError, match=r"^PROMDEMO_PROBE_PORT=8080 is not valid"):
        load_settings({"PROMDEMO_PROBE_PORT": "8080"})
